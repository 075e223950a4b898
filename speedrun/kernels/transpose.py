"""The transposed copy of a 2-D tensor of one-byte elements (the FP8 head's e5m2 gradient): one Triton kernel.

The head's weight gradient is an FP8 matmul over the tokens, and Hopper's FP8 tensor cores read both operands with
the summed dimension contiguous, while the loss kernel writes the logits' gradient a row (token) at a time. So each
step copies that gradient transposed: 2.47 GB read and written at the full softmax (49,152 x 50,304). Inductor's copy
of it took 2.40 ms on an H100, this kernel 1.76 ms (0.62 against 0.45 ms at the sampled head's 12,288 rows; part 49).
Each program reads a tile of BLOCK_M rows of BLOCK_N bytes and writes it as BLOCK_N rows of BLOCK_M bytes, so every
read is a run of BLOCK_N contiguous bytes and every write one of BLOCK_M (256 and 128 at the default launch).
`transposed_copy` falls back to torch's copy off CUDA (the CPU twin); tests run the kernel in Triton's interpreter.
"""

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: torch's copy does the work
    triton = None

# Tile and warps of a launch: the fastest over both head shapes of the ten that benchmarks/head_loss.py --transpose
# times (H100, part 49; 64 x 256 and 128 x 128 within 2%, 64 x 64 1.27x slower)
LAUNCH = dict(block_m=128, block_n=256, num_warps=8)


if triton is not None:

    @triton.jit
    def _transpose_kernel(src_ptr, dst_ptr, M, N, src_row_stride, dst_row_stride, BLOCK_M: tl.constexpr,
                          BLOCK_N: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        inside = (rows[:, None] < M) & (cols[None, :] < N)
        tile = tl.load(src_ptr + rows[:, None].to(tl.int64) * src_row_stride + cols[None, :], mask=inside)
        tl.store(dst_ptr + cols[:, None].to(tl.int64) * dst_row_stride + rows[None, :], tl.trans(tile),
                 mask=tl.trans(inside))


def transposed_copy(t: Tensor, block_m: int | None = None, block_n: int | None = None, num_warps: int | None = None,
                    use_triton: bool | None = None) -> Tensor:
    """t (M, N), one-byte elements, unit column stride -> t.T as a contiguous (N, M) tensor of the same dtype.
    Launch settings left out come from LAUNCH. use_triton: None picks the kernel for CUDA tensors and torch's copy
    elsewhere; True also runs it in Triton's interpreter (TRITON_INTERPRET=1) on a CPU tensor."""
    if t.ndim != 2 or t.element_size() != 1 or (t.size(1) > 1 and t.stride(1) != 1):
        raise ValueError(f"transposed_copy takes a 2-D tensor of one-byte elements with unit column stride; got "
                         f"{tuple(t.shape)} {t.dtype} stride {t.stride()}")
    if not (t.is_cuda if use_triton is None else use_triton) or triton is None:
        return t.t().contiguous()
    block_m, block_n = block_m or LAUNCH["block_m"], block_n or LAUNCH["block_n"]
    M, N = t.shape
    out = torch.empty((N, M), dtype=t.dtype, device=t.device)
    if t.numel():
        grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))
        # as bytes: the kernel moves bits, whatever the float8 format
        _transpose_kernel[grid](t.view(torch.uint8), out.view(torch.uint8), M, N, t.stride(0), out.stride(0),
                                BLOCK_M=block_m, BLOCK_N=block_n, num_warps=num_warps or LAUNCH["num_warps"])
    return out
