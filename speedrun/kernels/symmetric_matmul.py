"""C = alpha * X X^T + beta * addend, computing only the tiles on and above the diagonal: one Triton kernel.

Newton-Schulz (`speedrun.optim.muon.newton_schulz`) repeats A = X X^T; B = b A + c A A; X = a X + B X. Both
A = X X^T and A A = A A^T (A symmetric) are symmetric, so half of their output tiles are transposes of the other
half. The kernel launches one program per tile with block-row <= block-col (T (T + 1) / 2 of the T x T tiles),
accumulates it in float32 and writes it twice: at its own place and, transposed, at the mirrored place. The result
is exactly symmetric (each mirrored pair holds the same rounded value), and the B step is the same kernel with
X = A, alpha = c, beta = b, addend = A: the b A term added in the epilogue, no separate elementwise pass.

Layout: X (..., m, n) with any strides (a transposed view is fine), the leading dims flattened into one batch
that is the grid's second axis. C (..., m, m) is new, contiguous, in X's dtype. Sizes need not be multiples of
the tile: loads and stores are masked.

`symmetric_matmul_reference` is the same arithmetic in PyTorch (runs anywhere; the CPU-checkable twin).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from speedrun.kernels.tiles import INTERPRETED, precision_flags

try:
    import triton
    import triton.language as tl

    from speedrun.kernels.tiles import round_like_gpu_bf16, tile_dot
except ImportError:  # CPU-only installs: the reference still works
    triton = None

# (BLOCK, BLOCK_K, num_warps, num_stages); the output tile is BLOCK x BLOCK (square, so that it mirrors onto a
# tile). The candidates `triton.autotune` times on the GPU, per (m, n, with or without addend, dtype). The first
# is the usual H100 bf16 GEMM tile; 64 gives 4x the programs for small batches of 768-wide matrices; BLOCK_K 128
# halves the loop over a 3072-long row. Sized for 2-byte inputs (<= 128 KiB of staged tiles); with float32 some
# exceed shared memory, which the autotuner skips (an explicit `config` would fail to launch).
CONFIGS = (
    (128, 64, 8, 3),
    (128, 64, 8, 4),
    (128, 64, 4, 4),
    (64, 64, 4, 4),
    (128, 128, 8, 2),
)
# Under the interpreter timing means nothing and small tiles keep tests fast.
INTERPRETER_CONFIG = (32, 32, 4, 1)


def symmetric_matmul_reference(x: Tensor, alpha: float = 1.0, beta: float = 0.0,
                               addend: Tensor | None = None) -> Tensor:
    """alpha * x x^T + beta * addend in float32, its upper triangle mirrored onto the lower, in x's dtype."""
    xf = x.float()
    c = alpha * (xf @ xf.mT)
    if addend is not None and beta != 0.0:
        c = c + beta * addend.float()
    c = c.triu() + c.triu(1).mT  # the kernel reads the addend's upper triangle only and mirrors its result
    return c.to(x.dtype)


if triton is not None:

    @triton.jit
    def _symmetric_matmul_kernel(x_ptr, c_ptr, d_ptr, M, K, stride_xb, stride_xr, stride_xc,
                                 stride_cb, stride_cr, stride_cc, stride_db, stride_dr, stride_dc, alpha, beta,
                                 HAS_ADDEND: tl.constexpr, PRECISION: tl.constexpr, INTERPRETER_BF16: tl.constexpr,
                                 BLOCK: tl.constexpr, BLOCK_K: tl.constexpr):
        # Upper-triangle tile t -> (row, col), column by column: column j holds tiles t in [j(j+1)/2, (j+1)(j+2)/2).
        # Neighbouring programs share their column block of X, which stays in L2. The float root is corrected by
        # one step either way so rounding can never pick the wrong column.
        t = tl.program_id(0)
        col = ((tl.sqrt(8.0 * t.to(tl.float32) + 1.0) - 1.0) * 0.5).to(tl.int32)
        col = tl.where(col * (col + 1) // 2 > t, col - 1, col)
        col = tl.where((col + 1) * (col + 2) // 2 <= t, col + 1, col)
        row = t - col * (col + 1) // 2
        batch = tl.program_id(1).to(tl.int64)
        x_ptr += batch * stride_xb
        rm = row * BLOCK + tl.arange(0, BLOCK)
        rn = col * BLOCK + tl.arange(0, BLOCK)
        rk = tl.arange(0, BLOCK_K)
        m_in, n_in = rm < M, rn < M
        a_ptrs = x_ptr + rm[:, None] * stride_xr + rk[None, :] * stride_xc  # (BLOCK, BLOCK_K) rows of X
        b_ptrs = x_ptr + rk[:, None] * stride_xc + rn[None, :] * stride_xr  # (BLOCK_K, BLOCK) the same, transposed
        acc = tile_dot(a_ptrs, b_ptrs, m_in, n_in, rk, K, stride_xc, stride_xc, BLOCK, BLOCK, BLOCK_K, PRECISION,
                       INTERPRETER_BF16)
        acc = acc * alpha
        inside = m_in[:, None] & n_in[None, :]
        if HAS_ADDEND:
            d = tl.load(d_ptr + batch * stride_db + rm[:, None] * stride_dr + rn[None, :] * stride_dc, mask=inside,
                        other=0.0)
            acc += beta * d.to(tl.float32)
        acc = round_like_gpu_bf16(acc, INTERPRETER_BF16)
        out = acc.to(c_ptr.dtype.element_ty)
        c_ptr += batch * stride_cb
        # Own place: entries with global row <= col (all of an off-diagonal tile, the upper half of a diagonal one).
        # Mirror: the same values at (col, row), strictly above -> below, so a diagonal tile's two stores never
        # write one element twice and the lower triangle is a bitwise copy of the upper.
        upper = rm[:, None] <= rn[None, :]
        tl.store(c_ptr + rm[:, None] * stride_cr + rn[None, :] * stride_cc, out, mask=inside & upper)
        strictly = rm[:, None] < rn[None, :]
        tl.store(c_ptr + rn[None, :] * stride_cr + rm[:, None] * stride_cc, out, mask=inside & strictly)

    _symmetric_matmul_autotuned = triton.autotune(
        configs=[triton.Config(dict(BLOCK=b, BLOCK_K=bk), num_warps=w, num_stages=s) for b, bk, w, s in CONFIGS],
        key=["M", "K", "HAS_ADDEND"],  # Triton adds the tensors' dtypes to the key
    )(_symmetric_matmul_kernel)


def _check(x: Tensor, addend: Tensor | None) -> None:
    if x.ndim < 2 or x.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise ValueError(f"x must be (..., m, n) in bfloat16, float16 or float32; got {tuple(x.shape)} {x.dtype}")
    if addend is not None and (addend.shape != (*x.shape[:-1], x.shape[-2]) or addend.device != x.device):
        raise ValueError(f"addend must be (..., m, m) = {(*x.shape[:-1], x.shape[-2])} on {x.device}; got "
                         f"{tuple(addend.shape)} on {addend.device}")


def _launch(x: Tensor, alpha: float, beta: float, addend: Tensor | None, config: tuple | None) -> Tensor:
    if triton is None:
        raise RuntimeError("symmetric_matmul needs Triton; use symmetric_matmul_reference")
    *lead, m, n = x.shape
    x3 = x.reshape(-1, m, n)  # a view for contiguous or transposed batches; Triton reads any strides
    out = torch.empty(x3.size(0), m, m, dtype=x.dtype, device=x.device)
    has_addend = addend is not None and beta != 0.0
    d3 = addend.reshape(-1, m, m) if has_addend else out  # `out` only stands in for the unused pointer
    if config is None and INTERPRETED:
        config = INTERPRETER_CONFIG
    if out.numel():
        args = (x3, out, d3, m, n, *x3.stride(), *out.stride(), *d3.stride(), float(alpha), float(beta))
        meta = dict(HAS_ADDEND=has_addend, **precision_flags(x.dtype))
        if config is None:
            grid = lambda cfg: (triton.cdiv(m, cfg["BLOCK"]) * (triton.cdiv(m, cfg["BLOCK"]) + 1) // 2, x3.size(0))
            _symmetric_matmul_autotuned[grid](*args, **meta)
        else:
            block, block_k, warps, stages = config
            tiles = triton.cdiv(m, block)
            _symmetric_matmul_kernel[(tiles * (tiles + 1) // 2, x3.size(0))](
                *args, **meta, BLOCK=block, BLOCK_K=block_k, num_warps=warps, num_stages=stages)
    return out.view(*lead, m, m)


# torch.compile sees the kernel as one opaque op (no graph break); eager calls skip the dispatcher's overhead.
# (Optional, not `Tensor | None`: the schema is inferred from the annotation, and older torch knows only Optional.)
@torch.library.custom_op("speedrun::symmetric_matmul", mutates_args=())
def _symmetric_matmul_op(x: Tensor, alpha: float, beta: float, addend: Optional[Tensor]) -> Tensor:
    return _launch(x, alpha, beta, addend, None)


@_symmetric_matmul_op.register_fake
def _(x, alpha, beta, addend):
    return x.new_empty(*x.shape[:-1], x.shape[-2])


def symmetric_matmul(x: Tensor, alpha: float = 1.0, beta: float = 0.0, addend: Tensor | None = None,
                     config: tuple[int, int, int, int] | None = None) -> Tensor:
    """alpha * x x^T + beta * addend for x (..., m, n) -> (..., m, m) in x's dtype, float32 accumulation, exactly
    symmetric. `addend` (..., m, m) must be symmetric: only its upper triangle is read. Needs Triton (a CUDA GPU,
    or TRITON_INTERPRET=1).

    `config` = (BLOCK, BLOCK_K, num_warps, num_stages) launches that tile; None lets `triton.autotune` pick among
    CONFIGS on the GPU (first call per shape), or uses INTERPRETER_CONFIG under the interpreter.
    """
    _check(x, addend)
    if config is None and torch.compiler.is_compiling():
        return _symmetric_matmul_op(x, float(alpha), float(beta), addend)
    return _launch(x, alpha, beta, addend, config)


def symmetric_kernel_usable(x: Tensor) -> bool:
    """Whether `symmetric_matmul` can run on x: Triton installed, a dtype it takes, and x on a CUDA GPU (or on the
    CPU under the interpreter)."""
    return (triton is not None and x.dtype in (torch.bfloat16, torch.float16, torch.float32)
            and (x.is_cuda or (INTERPRETED and x.device.type == "cpu")))
