"""ReLU² and its gradient cast to FP8 in one pass each, for the MLP with delayed scaling (`fp8_mlp_scaling`).

Forward:  h = relu(p)²            -> h * s in e4m3, row-major and/or transposed, and max|h| into a running maximum.
Backward: d = g * 2 relu(p)       -> d * s in e5m2, row-major and transposed, and max|d| into a running maximum.

p is the c_fc output (N, H) in bf16, g the gradient of h. The scale s comes in as a float32 tensor (from the
previous step's maximum), so no pass waits on a reduction over its own output: dynamic scaling reads its input
twice (the maximum, then the cast) and copies the FP8 result again to transpose it for the weight-gradient matmul.
Values past the format's largest finite value saturate (e4m3fn has no infinity: an unclamped cast would give NaN).
Each block writes its own maximum and one small reduction follows, so the order of the blocks does not matter.
`relu2_fp8_reference` / `relu2_grad_fp8_reference` are the same arithmetic in PyTorch (any device); the kernels run on
a CUDA GPU or under TRITON_INTERPRET=1 (with float32 outputs there: the interpreter's float8 rounding is not
round-to-nearest).
"""

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the references still work
    triton = None

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def _saturate(t: Tensor, dtype: torch.dtype) -> Tensor:
    big = torch.finfo(dtype).max
    return t.clamp(-big, big).to(dtype)


def relu2_fp8_reference(p: Tensor, scale: Tensor, dtype: torch.dtype = E4M3) -> tuple[Tensor, Tensor, Tensor]:
    """(relu(p)² * scale in `dtype` (N, H), the same transposed and contiguous (H, N), max relu(p)² float32 0-d)."""
    h = p.float().clamp(min=0).square()
    y = _saturate(h * scale.float(), dtype)
    return y, y.t().contiguous(), h.amax() if h.numel() else h.new_zeros(())


def relu2_grad_fp8_reference(g: Tensor, p: Tensor, scale: Tensor, dtype: torch.dtype = E5M2
                             ) -> tuple[Tensor, Tensor, Tensor]:
    """(g * 2 relu(p) * scale in `dtype` (N, H), the same transposed (H, N), max |g * 2 relu(p)| float32 0-d)."""
    d = g.float() * 2 * p.float().clamp(min=0)
    y = _saturate(d * scale.float(), dtype)
    return y, y.t().contiguous(), d.abs().amax() if d.numel() else d.new_zeros(())


if triton is not None:

    @triton.jit
    def _relu2_fp8_kernel(g_ptr, p_ptr, y_ptr, yt_ptr, scale_ptr, block_max_ptr, N, H, FMAX: tl.constexpr,
                          GRAD: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr, MEASURE: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
        pid_n, pid_h = tl.program_id(0), tl.program_id(1)
        rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        s = tl.load(scale_ptr)
        if ROWS or MEASURE:
            mask = (rows[:, None] < N) & (cols[None, :] < H)
            v = _relu2_tile(g_ptr, p_ptr, rows[:, None] * H + cols[None, :], mask, GRAD)
            if MEASURE:  # one slot per block, not an atomic on one address: thousands of blocks would queue on it
                tl.store(block_max_ptr + pid_n * tl.num_programs(1) + pid_h, tl.max(tl.max(tl.abs(v), axis=1), axis=0))
            if ROWS:
                tl.store(y_ptr + rows[:, None] * H + cols[None, :],
                         tl.clamp(v * s, -FMAX, FMAX).to(y_ptr.dtype.element_ty), mask=mask)
        # The transposed copy (H, N) from its own (BLOCK_H, BLOCK_N) tile, read through transposed addresses (the
        # second read of p and g mostly hits L2) and stored contiguously. Storing the row tile through transposed
        # addresses instead, with or without tl.trans, cast first or as bytes, wrote wrong values in the gradient
        # kernel on an H200 (Triton 3.6; right in the interpreter): experiments part 18, transpose_variants.py.
        if COLS:
            tmask = (rows[None, :] < N) & (cols[:, None] < H)
            vt = _relu2_tile(g_ptr, p_ptr, rows[None, :] * H + cols[:, None], tmask, GRAD)
            tl.store(yt_ptr + cols[:, None] * N + rows[None, :],
                     tl.clamp(vt * s, -FMAX, FMAX).to(yt_ptr.dtype.element_ty), mask=tmask)

    @triton.jit
    def _relu2_tile(g_ptr, p_ptr, offs, mask, GRAD: tl.constexpr):
        """relu(p)² or g * 2 relu(p) at `offs`, float32."""
        r = tl.maximum(tl.load(p_ptr + offs, mask=mask, other=0.0).to(tl.float32), 0.0)
        if GRAD:
            v = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32) * 2.0 * r
        else:
            v = r * r
        return v


def _launch(g: Tensor | None, p: Tensor, scale: Tensor, amax: Tensor | None, dtype: torch.dtype,
            out_dtype: torch.dtype | None, rows: bool, cols: bool, block_n: int, block_h: int, num_warps: int
            ) -> tuple[Tensor | None, Tensor | None]:
    if triton is None:
        raise RuntimeError("relu2 FP8 kernels need Triton; use relu2_fp8_reference / relu2_grad_fp8_reference")
    if p.ndim != 2 or not p.is_contiguous() or (g is not None and (g.shape != p.shape or not g.is_contiguous())):
        raise ValueError(f"p (and g) must be contiguous (N, H); got {tuple(p.shape)}"
                         + ("" if g is None else f" and {tuple(g.shape)}"))
    if (amax is not None and (amax.dtype != torch.float32 or amax.numel() != 1)) or scale.numel() != 1:
        raise ValueError("scale and amax must be one-element tensors (amax float32)")
    N, H = p.shape
    out = out_dtype or dtype
    y = torch.empty(N, H, dtype=out, device=p.device) if rows else None
    yt = torch.empty(H, N, dtype=out, device=p.device) if cols else None
    if N and H:
        grid = (triton.cdiv(N, block_n), triton.cdiv(H, block_h))
        block_max = torch.empty(grid[0] * grid[1] if amax is not None else 1, dtype=torch.float32, device=p.device)
        _relu2_fp8_kernel[grid](p if g is None else g, p, p if y is None else y, p if yt is None else yt,
                                scale.float(), block_max, N, H, FMAX=float(torch.finfo(dtype).max), GRAD=g is not None,
                                ROWS=rows, COLS=cols, MEASURE=amax is not None, BLOCK_N=block_n, BLOCK_H=block_h,
                                num_warps=num_warps)
        if amax is not None:
            torch.maximum(amax, block_max.amax(), out=amax)
    return y, yt


def relu2_fp8(p: Tensor, scale: Tensor, amax: Tensor | None, dtype: torch.dtype = E4M3,
              out_dtype: torch.dtype | None = None, rows: bool = True, cols: bool = True, block_n: int = 64,
              block_h: int = 128, num_warps: int = 8) -> tuple[Tensor | None, Tensor | None]:
    """p (N, H) contiguous -> (relu(p)² * scale in `dtype` or None without `rows`, its transpose (H, N) contiguous or
    None without `cols`); raises `amax` (float32, one element, written in place; None: not measured) to at least
    max relu(p)². out_dtype: store in another dtype, values still clamped to `dtype`'s range (the interpreter tests
    use float32)."""
    return _launch(None, p, scale, amax, dtype, out_dtype, rows, cols, block_n, block_h, num_warps)


def relu2_grad_fp8(g: Tensor, p: Tensor, scale: Tensor, amax: Tensor, dtype: torch.dtype = E5M2,
                   out_dtype: torch.dtype | None = None, block_n: int = 64, block_h: int = 128, num_warps: int = 8
                   ) -> tuple[Tensor, Tensor]:
    """g, p (N, H) contiguous -> (g * 2 relu(p) * scale in `dtype`, its transpose (H, N)); raises `amax` to at least
    max |g * 2 relu(p)|."""
    return _launch(g, p, scale, amax, dtype, out_dtype, True, True, block_n, block_h, num_warps)


# As torch.library ops, opaque to torch.compile. The running maximum goes into slot [1, kind] of the MLP's (2, 2)
# float32 state (rows: previous step, this step; columns: h, d) without being declared a mutation: nothing in a
# compiled graph reads that slot, and the trainer moves it to row 0 between steps (GPT.roll_fp8_amax). A declared
# mutation would be functionalised: the backward graph would write into a copy of the state, not the state.
# Forward: both copies in one pass, measured: c_proj's input, and the transposed copy that c_proj's weight gradient
# needs, kept for the backward pass (151 MB a layer at the track's shape). Part 17 recomputed that copy in the backward
# pass instead, reading the c_fc output once more per layer, because memory was short then; the training peak is now
# 21,207 MiB against record21_1gpu's 28,814.
@torch.library.custom_op("speedrun::relu2_fp8", mutates_args=())
def relu2_fp8_op(p: Tensor, scale: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    return relu2_fp8(p.contiguous(), scale, state[1, 0:1])


@relu2_fp8_op.register_kernel("cpu")
def _(p, scale, state):
    y, yt, amax = relu2_fp8_reference(p, scale)
    state[1, 0] = torch.maximum(state[1, 0], amax)
    return y, yt


@relu2_fp8_op.register_fake
def _(p, scale, state):
    return p.new_empty(p.shape, dtype=E4M3), p.new_empty(p.shape[::-1], dtype=E4M3)


@torch.library.custom_op("speedrun::relu2_grad_fp8", mutates_args=())
def relu2_grad_fp8_op(g: Tensor, p: Tensor, scale: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    return relu2_grad_fp8(g.contiguous(), p.contiguous(), scale, state[1, 1:2])


@relu2_grad_fp8_op.register_kernel("cpu")
def _(g, p, scale, state):
    y, yt, amax = relu2_grad_fp8_reference(g, p, scale)
    state[1, 1] = torch.maximum(state[1, 1], amax)
    return y, yt


@relu2_grad_fp8_op.register_fake
def _(g, p, scale, state):
    return p.new_empty(p.shape, dtype=E5M2), p.new_empty(p.shape[::-1], dtype=E5M2)
