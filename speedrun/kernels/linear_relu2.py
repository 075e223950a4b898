"""The ReLU^2 MLP y = relu(x W1^T)^2 W2^T with its first matmul and the ReLU^2 as one Triton kernel, and the
backward's dy W2 with the ReLU^2's derivative as another (a later speedrun record's "fused linear + ReLU^2").

Shapes: x (N, D), W1 = c_fc (M, D), W2 = c_proj (D, M), pre = x W1^T (N, M), h = relu(pre)^2, y = h W2^T.

Forward kernel: pre accumulated in float32, the epilogue writes h = relu(pre)^2 only (in x's dtype). pre never
reaches memory: the backward needs 2 relu(pre), which is sqrt(h) exactly in real numbers (h >= 0, and h = 0 where
pre <= 0). Saving h alone instead of h and pre halves what the MLP keeps for the backward (N x M x 2 bytes per
layer, 302 MB at N = 49,152) and drops a write of that size; h is kept anyway for c_proj's weight gradient, and
sqrt(bf16(pre^2)) is even a little closer to |pre| than bf16(pre) is (sqrt halves the relative rounding error).

Backward kernel: dpre = (dy W2) * 2 sqrt(h), the epilogue reading h; dh never reaches memory. Then grad_x =
dpre W1, grad_W1 = dpre^T x, grad_W2 = dy^T h and y = h W2^T are torch (cuBLAS) matmuls.

Both kernels are one tiled GEMM C = A B (A (rows, K), B (K, cols), any strides) with grouped program order (L2
reuse of A's row blocks) and masked edges (sizes need not be multiples of the tiles); `BACKWARD` picks the
epilogue. `fused_linear_relu2_mlp` is the whole MLP as a custom op with its own autograd (torch.compile keeps it
opaque and does not trace into Triton). `*_reference` are the same arithmetic in PyTorch (run anywhere).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from speedrun.kernels.tiles import INTERPRETED, precision_flags

try:
    import triton
    import triton.language as tl

    from speedrun.kernels.tiles import round_like_gpu_bf16, tile_dot
except ImportError:  # CPU-only installs: the references still work
    triton = None

# (BLOCK_M rows, BLOCK_N cols, BLOCK_K, GROUP_M, num_warps, num_stages): what `triton.autotune` times on the GPU per
# (rows, cols, K, direction, dtypes). The first two are the usual H100 bf16 GEMM tiles (128 x 256 stages 3 is
# 144 KiB of staged operands, inside the 227 KiB of shared memory); the smaller ones give more programs where N is
# small. Sized for 2-byte inputs; with float32 some do not fit, which the autotuner skips.
CONFIGS = (
    (128, 256, 64, 8, 8, 3),
    (128, 128, 64, 8, 8, 4),
    (128, 128, 64, 8, 4, 4),
    (128, 64, 64, 8, 4, 4),
    (64, 128, 64, 8, 4, 4),
)
# Under the interpreter timing means nothing and small tiles keep tests fast.
INTERPRETER_CONFIG = (32, 32, 32, 2, 4, 1)


def linear_relu2_reference(x: Tensor, w: Tensor) -> Tensor:
    """h = relu(x @ w.T)^2 from the float32 product, rounded once to x's dtype (what the forward kernel writes)."""
    return F.relu(x.float() @ w.float().T).square().to(x.dtype)


def relu2_backward_reference(dy: Tensor, w2: Tensor, h: Tensor) -> Tensor:
    """dpre = (dy @ w2) * 2 sqrt(h) from the float32 product, rounded once to dy's dtype (the backward kernel)."""
    return ((dy.float() @ w2.float()) * 2 * h.float().sqrt()).to(dy.dtype)


def relu2_mlp_reference(x: Tensor, w_fc: Tensor, w_proj: Tensor) -> Tensor:
    """The plain MLP as speedrun.model.gpt.MLP computes it: weights cast to x's dtype, torch ops throughout."""
    return F.linear(F.relu(F.linear(x, w_fc.type_as(x))).square(), w_proj.type_as(x))


if triton is not None:

    @triton.jit
    def _linear_relu2_kernel(a_ptr, b_ptr, out_ptr, aux_ptr, n_rows, n_cols, K,
                             stride_ar, stride_ak, stride_bk, stride_bc, stride_or, stride_oc, stride_xr, stride_xc,
                             BACKWARD: tl.constexpr, PRECISION: tl.constexpr, INTERPRETER_BF16: tl.constexpr,
                             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                             GROUP_M: tl.constexpr):
        # Grouped order: GROUP_M row blocks sweep the column blocks together, so each B column block is read from
        # L2 by GROUP_M programs in a row and A's row blocks stay resident meanwhile.
        pid = tl.program_id(0)
        blocks_m = tl.cdiv(n_rows, BLOCK_M)
        blocks_n = tl.cdiv(n_cols, BLOCK_N)
        per_group = GROUP_M * blocks_n
        first_m = (pid // per_group) * GROUP_M
        group_m = tl.minimum(blocks_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % group_m
        pid_n = (pid % per_group) // group_m
        rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # N x M passes 2^31 elements at long rows
        rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
        rk = tl.arange(0, BLOCK_K)
        m_in, n_in = rm < n_rows, rn < n_cols
        a_ptrs = a_ptr + rm[:, None] * stride_ar + rk[None, :] * stride_ak
        b_ptrs = b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bc
        acc = tile_dot(a_ptrs, b_ptrs, m_in, n_in, rk, K, stride_ak, stride_bk, BLOCK_M, BLOCK_N, BLOCK_K, PRECISION,
                       INTERPRETER_BF16)
        inside = m_in[:, None] & n_in[None, :]
        if BACKWARD:
            # dpre = dh * 2 relu(pre), relu(pre) = sqrt(h): h is what the forward kept (see the module docstring)
            h = tl.load(aux_ptr + rm[:, None] * stride_xr + rn[None, :] * stride_xc, mask=inside, other=0.0)
            acc = acc * 2.0 * tl.sqrt_rn(h.to(tl.float32))  # IEEE sqrt: sqrt(fl(p * p)) == p exactly
        else:
            acc = tl.maximum(acc, 0.0)
            acc = acc * acc
        acc = round_like_gpu_bf16(acc, INTERPRETER_BF16)
        tl.store(out_ptr + rm[:, None] * stride_or + rn[None, :] * stride_oc, acc.to(out_ptr.dtype.element_ty),
                 mask=inside)

    _linear_relu2_autotuned = triton.autotune(
        configs=[triton.Config(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=g), num_warps=w, num_stages=s)
                 for bm, bn, bk, g, w, s in CONFIGS],
        key=["n_rows", "n_cols", "K", "BACKWARD"],  # Triton adds the tensors' dtypes to the key
    )(_linear_relu2_kernel)


DTYPES = (torch.bfloat16, torch.float32)


def linear_relu2_usable(x: Tensor) -> bool:
    """Whether the kernels can run on x: Triton installed, bf16 or float32, and x on a CUDA GPU (or on the CPU
    under the interpreter)."""
    return triton is not None and x.dtype in DTYPES and (x.is_cuda or (INTERPRETED and x.device.type == "cpu"))


def _gemm(a: Tensor, b: Tensor, aux: Tensor | None, config: tuple | None) -> Tensor:
    """out = epilogue(a @ b): a (rows, K), b (K, cols), any strides; out (rows, cols) new, contiguous, a's dtype."""
    if triton is None:
        raise RuntimeError("linear_relu2 needs Triton; use the *_reference functions")
    rows, K = a.shape
    cols = b.shape[1]
    out = torch.empty(rows, cols, dtype=a.dtype, device=a.device)
    if not out.numel():
        return out
    backward = aux is not None
    x = aux if backward else out  # `out` only stands in for the unused pointer
    args = (a, b, out, x, rows, cols, K, *a.stride(), *b.stride(), *out.stride(), *x.stride())
    meta = dict(BACKWARD=backward, **precision_flags(a.dtype))
    if config is None and INTERPRETED:
        config = INTERPRETER_CONFIG
    if config is None:
        grid = lambda cfg: (triton.cdiv(rows, cfg["BLOCK_M"]) * triton.cdiv(cols, cfg["BLOCK_N"]),)
        _linear_relu2_autotuned[grid](*args, **meta)
    else:
        bm, bn, bk, g, warps, stages = config
        _linear_relu2_kernel[(triton.cdiv(rows, bm) * triton.cdiv(cols, bn),)](
            *args, **meta, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=g, num_warps=warps, num_stages=stages)
    return out


def _check(name: str, *ts: Tensor) -> None:
    if any(t.ndim != 2 for t in ts) or len({t.dtype for t in ts}) != 1 or ts[0].dtype not in DTYPES:
        raise ValueError(f"{name}: operands must be 2-d, all bfloat16 or all float32; got "
                         + ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in ts))


def linear_relu2(x: Tensor, w: Tensor, config: tuple | None = None) -> Tensor:
    """h = relu(x @ w.T)^2 for x (N, K), w (M, K) of one dtype -> (N, M) contiguous in that dtype (float32
    accumulation). `config` = (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages) launches that tile; None
    autotunes among CONFIGS on the GPU, or uses INTERPRETER_CONFIG under the interpreter."""
    _check("linear_relu2", x, w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear_relu2: x {tuple(x.shape)} and w {tuple(w.shape)} differ in K")
    return _gemm(x, w.T, None, config)


def relu2_backward(dy: Tensor, w2: Tensor, h: Tensor, config: tuple | None = None) -> Tensor:
    """dpre = (dy @ w2) * 2 sqrt(h) for dy (N, D), w2 (D, M), h = relu(pre)^2 (N, M) -> (N, M) contiguous: the
    gradient of pre given y = h @ w2.T's gradient dy."""
    _check("relu2_backward", dy, w2, h)
    if dy.shape[1] != w2.shape[0] or h.shape != (dy.shape[0], w2.shape[1]):
        raise ValueError(f"relu2_backward: dy {tuple(dy.shape)}, w2 {tuple(w2.shape)}, h {tuple(h.shape)} do not fit")
    return _gemm(dy, w2, h, config)


# --- the whole MLP as one custom op with its own backward ------------------------------------------------------------
# Weights come in as the float32 parameters and are cast to x's dtype inside (as CastedLinear does); gradients go
# back in the parameters' dtype and x's. The forward returns h too, for the backward: an output, not a new
# allocation, so the autograd context can keep it.


@torch.library.custom_op("speedrun::relu2_mlp", mutates_args=())
def relu2_mlp(x: Tensor, w_fc: Tensor, w_proj: Tensor) -> tuple[Tensor, Tensor]:
    """x (N, D), w_fc (M, D), w_proj (D, M) -> (y (N, D), h (N, M)), both in x's dtype."""
    h = linear_relu2(x, w_fc.to(x.dtype))
    return h @ w_proj.to(x.dtype).T, h


@relu2_mlp.register_fake
def _(x, w_fc, w_proj):
    assert x.ndim == 2 and w_fc.shape[1] == x.shape[1] and w_proj.shape == (x.shape[1], w_fc.shape[0])
    return x.new_empty(x.shape[0], w_proj.shape[0]), x.new_empty(x.shape[0], w_fc.shape[0])


@torch.library.custom_op("speedrun::relu2_mlp_backward", mutates_args=())
def relu2_mlp_backward(dy: Tensor, x: Tensor, h: Tensor, w_fc: Tensor, w_proj: Tensor
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """-> (grad_x in x's dtype, grad_w_fc, grad_w_proj in the weights' dtypes), all contiguous."""
    w1, w2 = w_fc.to(x.dtype), w_proj.to(x.dtype)
    dy = dy.to(x.dtype)
    dpre = relu2_backward(dy, w2, h)
    # The weight gradients come out of cuBLAS in x's dtype, as in the plain path's autograd, then to the parameter's.
    return dpre @ w1, (dpre.T @ x).to(w_fc.dtype), (dy.T @ h).to(w_proj.dtype)


@relu2_mlp_backward.register_fake
def _(dy, x, h, w_fc, w_proj):
    return x.new_empty(x.shape), w_fc.new_empty(w_fc.shape), w_proj.new_empty(w_proj.shape)


def _setup_context(ctx, inputs, output):
    x, w_fc, w_proj = inputs
    ctx.save_for_backward(x, output[1], w_fc, w_proj)
    ctx.set_materialize_grads(False)  # h's gradient is never used: no (N, M) zeros for it


def _backward(ctx, dy, _dh):
    if dy is None:
        return None, None, None
    x, h, w_fc, w_proj = ctx.saved_tensors
    return torch.ops.speedrun.relu2_mlp_backward(dy, x, h, w_fc, w_proj)


relu2_mlp.register_autograd(_backward, setup_context=_setup_context)


def fused_linear_relu2_mlp(x: Tensor, w_fc: Tensor, w_proj: Tensor) -> Tensor:
    """y = relu(x @ w_fc.T)^2 @ w_proj.T for x (..., D) through the fused op (needs `linear_relu2_usable(x)`)."""
    y = torch.ops.speedrun.relu2_mlp(x.flatten(0, -2).contiguous(), w_fc, w_proj)[0]
    return y.view(*x.shape[:-1], w_proj.shape[0])
