"""ReLU² and its gradient cast to FP8 in one pass each, for the MLP with delayed scaling (`fp8_mlp_scaling`).

Forward:  h = relu(p)²            -> h * s in e4m3, row-major and/or transposed, and max|h| into a running maximum.
Backward: d = g * 2 relu(p)       -> d * s in e5m2, row-major and transposed, and max|d| into a running maximum;
                                     optionally h * s_h in e4m3 transposed too (c_proj's weight gradient), from the
                                     same read of p.

p is the c_fc output (N, H) in bf16, g the gradient of h. The scale s comes in as a float32 tensor (from the
previous step's maximum), so no pass waits on a reduction over its own output: dynamic scaling reads its input
twice (the maximum, then the cast) and copies the FP8 result again to transpose it for the weight-gradient matmul.
Values past the format's largest finite value saturate (e4m3fn has no infinity: an unclamped cast would give NaN).
Each block raises the running maximum itself with one atomic max: a maximum does not depend on the blocks' order, and
no reduction over per-block slots follows (two more launches per call, 44 a step: part 57).
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
    def _relu2_fp8_kernel(g_ptr, p_ptr, y_ptr, yt_ptr, ht_ptr, scale_ptr, h_scale_ptr, amax_ptr, N, H,
                          FMAX: tl.constexpr, HFMAX: tl.constexpr, GRAD: tl.constexpr, COLS: tl.constexpr,
                          MEASURE: tl.constexpr, HT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
        pid_n, pid_h = tl.program_id(0), tl.program_id(1)
        rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        cols = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
        s = tl.load(scale_ptr)
        mask = (rows[:, None] < N) & (cols[None, :] < H)
        v = _relu2_tile(g_ptr, p_ptr, rows[:, None] * H + cols[None, :], mask, GRAD)[0]
        if MEASURE:  # |v| >= 0, so a float atomic max on the running maximum is exact
            tl.atomic_max(amax_ptr, tl.max(tl.max(tl.abs(v), axis=1), axis=0))
        tl.store(y_ptr + rows[:, None] * H + cols[None, :], tl.clamp(v * s, -FMAX, FMAX).to(y_ptr.dtype.element_ty),
                 mask=mask)
        # The transposed copy (H, N) from its own (BLOCK_H, BLOCK_N) tile, read through transposed addresses (the
        # second read of p and g mostly hits L2) and stored contiguously. Storing the row tile through transposed
        # addresses instead, with or without tl.trans, cast first or as bytes, wrote wrong values in the gradient
        # kernel on an H200 (Triton 3.6; right in the interpreter): experiments part 18, transpose_variants.py.
        if COLS:
            tmask = (rows[None, :] < N) & (cols[:, None] < H)
            vt, rt = _relu2_tile(g_ptr, p_ptr, rows[None, :] * H + cols[:, None], tmask, GRAD)
            tl.store(yt_ptr + cols[:, None] * N + rows[None, :],
                     tl.clamp(vt * s, -FMAX, FMAX).to(yt_ptr.dtype.element_ty), mask=tmask)
            if HT:  # relu(p)² at the forward's scale, transposed: c_proj's weight gradient, from the p read here
                tl.store(ht_ptr + cols[:, None] * N + rows[None, :],
                         tl.clamp(rt * rt * tl.load(h_scale_ptr), -HFMAX, HFMAX).to(ht_ptr.dtype.element_ty), mask=tmask)

    @triton.jit
    def _relu2_tile(g_ptr, p_ptr, offs, mask, GRAD: tl.constexpr):
        """(relu(p)² or g * 2 relu(p), relu(p)) at `offs`, float32."""
        r = tl.maximum(tl.load(p_ptr + offs, mask=mask, other=0.0).to(tl.float32), 0.0)
        if GRAD:
            v = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32) * 2.0 * r
        else:
            v = r * r
        return v, r


def _launch(g: Tensor | None, p: Tensor, scale: Tensor, amax: Tensor | None, dtype: torch.dtype,
            out_dtype: torch.dtype | None, cols: bool, h_scale: Tensor | None, block_n: int, block_h: int,
            num_warps: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    if triton is None:
        raise RuntimeError("relu2 FP8 kernels need Triton; use relu2_fp8_reference / relu2_grad_fp8_reference")
    if p.ndim != 2 or not p.is_contiguous() or (g is not None and (g.shape != p.shape or not g.is_contiguous())):
        raise ValueError(f"p (and g) must be contiguous (N, H); got {tuple(p.shape)}"
                         + ("" if g is None else f" and {tuple(g.shape)}"))
    if (amax is not None and (amax.dtype != torch.float32 or amax.numel() != 1)) or scale.numel() != 1 \
            or (h_scale is not None and h_scale.numel() != 1):
        raise ValueError("scales and amax must be one-element tensors (amax float32)")
    N, H = p.shape
    y = torch.empty(N, H, dtype=out_dtype or dtype, device=p.device)
    yt = torch.empty(H, N, dtype=out_dtype or dtype, device=p.device) if cols else None
    ht = torch.empty(H, N, dtype=out_dtype or E4M3, device=p.device) if h_scale is not None else None
    if N and H:
        grid = (triton.cdiv(N, block_n), triton.cdiv(H, block_h))
        _relu2_fp8_kernel[grid](p if g is None else g, p, y, y if yt is None else yt, y if ht is None else ht,
                                scale.float(), scale.float() if h_scale is None else h_scale.float(),
                                y if amax is None else amax, N, H,
                                FMAX=float(torch.finfo(dtype).max), HFMAX=float(torch.finfo(E4M3).max),
                                GRAD=g is not None, COLS=cols, MEASURE=amax is not None, HT=h_scale is not None,
                                BLOCK_N=block_n, BLOCK_H=block_h, num_warps=num_warps)
    return y, yt, ht


def relu2_fp8(p: Tensor, scale: Tensor, amax: Tensor | None, dtype: torch.dtype = E4M3,
              out_dtype: torch.dtype | None = None, cols: bool = True, block_n: int = 64, block_h: int = 128,
              num_warps: int = 8) -> tuple[Tensor, Tensor | None]:
    """p (N, H) contiguous -> (relu(p)² * scale in `dtype`, its transpose (H, N) contiguous or None without `cols`);
    raises `amax` (float32, one element, written in place; None: not measured) to at least max relu(p)². out_dtype:
    store in another dtype, values still clamped to `dtype`'s range (the interpreter tests use float32)."""
    return _launch(None, p, scale, amax, dtype, out_dtype, cols, None, block_n, block_h, num_warps)[:2]


def relu2_grad_fp8(g: Tensor, p: Tensor, scale: Tensor, amax: Tensor, dtype: torch.dtype = E5M2,
                   out_dtype: torch.dtype | None = None, h_scale: Tensor | None = None, block_n: int = 64,
                   block_h: int = 128, num_warps: int = 8) -> tuple[Tensor, Tensor, Tensor | None]:
    """g, p (N, H) contiguous -> (g * 2 relu(p) * scale in `dtype`, its transpose (H, N), and with `h_scale` the
    forward's relu(p)² * h_scale in e4m3 transposed (H, N), else None); raises `amax` to at least
    max |g * 2 relu(p)|. The transposed ReLU² copy costs one more write here, not a pass over p of its own."""
    return _launch(g, p, scale, amax, dtype, out_dtype, True, h_scale, block_n, block_h, num_warps)


# As torch.library ops, opaque to torch.compile. The running maximum goes into slot [1, kind] of the MLP's (2, 2)
# float32 state (rows: previous step, this step; columns: h, d) without being declared a mutation: nothing in a
# compiled graph reads that slot, and the trainer moves it to row 0 between steps (GPT.roll_fp8_amax). A declared
# mutation would be functionalised: the backward graph would write into a copy of the state, not the state.
# Forward: the row-major cast only (c_proj's input), measured. Backward: the gradient's two copies and the transposed
# ReLU² copy (c_proj's weight gradient), all from one read of the kept c_fc output: keeping that copy from the forward
# instead cost 1.55 GiB at the peak (part 17, call B3), and a pass of its own read p once more (part 53).
@torch.library.custom_op("speedrun::relu2_fp8", mutates_args=())
def relu2_fp8_op(p: Tensor, scale: Tensor, state: Tensor) -> Tensor:
    return relu2_fp8(p.contiguous(), scale, state[1, 0:1], cols=False)[0]


@relu2_fp8_op.register_kernel("cpu")
def _(p, scale, state):
    y, _, amax = relu2_fp8_reference(p, scale)
    state[1, 0] = torch.maximum(state[1, 0], amax)
    return y


@relu2_fp8_op.register_fake
def _(p, scale, state):
    return p.new_empty(p.shape, dtype=E4M3)


@torch.library.custom_op("speedrun::relu2_grad_fp8", mutates_args=())
def relu2_grad_fp8_op(g: Tensor, p: Tensor, scale: Tensor, state: Tensor, h_scale: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """(d, d transposed, relu(p)² at h_scale transposed): see relu2_grad_fp8."""
    return relu2_grad_fp8(g.contiguous(), p.contiguous(), scale, state[1, 1:2], h_scale=h_scale)


@relu2_grad_fp8_op.register_kernel("cpu")
def _(g, p, scale, state, h_scale):
    y, yt, amax = relu2_grad_fp8_reference(g, p, scale)
    state[1, 1] = torch.maximum(state[1, 1], amax)
    return y, yt, relu2_fp8_reference(p, h_scale)[1]


@relu2_grad_fp8_op.register_fake
def _(g, p, scale, state, h_scale):
    return p.new_empty(p.shape, dtype=E5M2), p.new_empty(p.shape[::-1], dtype=E5M2), p.new_empty(p.shape[::-1], dtype=E4M3)
