"""FP8 matmul for the head as a custom op with its own backward (record-21 scaling).

Forward: x * x_s -> e4m3, w * w_s -> e4m3, `_scaled_mm` with inverse scales, bf16 out.
Backward: grad * grad_s -> e5m2; grad_x = grad @ w (bf16), grad_w = grad^T @ x in w's dtype and layout (row-major):
a gradient in another layout or dtype than its parameter's costs autograd a cast and a copy into the parameter's
layout, and a tied table's two gradients (head and embedding) an add over two layouts (experiments part 55).
`fp8_head_loss` is the head and its soft-capped cross-entropy as one op: the loss kernel writes the logits' gradient
in e5m2 during the forward pass (speedrun/kernels/softcap_ce.py), so the (tokens x vocab) logits are freed at once
and the backward pass is the two matmuls alone, the incoming loss gradient folded into their scale.
"""

import functools
import math

import torch
from torch import Tensor

from speedrun.compile_cache import key_caches_to_source


def fp8_supported(device: torch.device | str | None = None) -> bool:
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def _forward(x: Tensor, w: Tensor, x_s: float, w_s: float):
    x_f8 = x.mul(x_s).to(torch.float8_e4m3fn)
    w_f8 = w.mul(w_s).to(torch.float8_e4m3fn)
    out = torch._scaled_mm(x_f8, w_f8.T, out_dtype=torch.bfloat16, scale_a=x.new_tensor(1 / x_s, dtype=torch.float32),
                           scale_b=x.new_tensor(1 / w_s, dtype=torch.float32), use_fast_accum=True)
    return out, x_f8, w_f8


def _grads_from_fp8(g_f8: Tensor, g_f8_t: Tensor, g_scale: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float,
                    w_s: float, w_dtype: torch.dtype):
    """(grad_x bf16, grad_w row-major in w_dtype) from the output gradient g_f8 * g_scale (g_scale a float32 0-d
    tensor); g_f8_t is g_f8.T contiguous, the layout the weight gradient's FP8 matmul reads."""
    one = lambda s: g_scale.new_tensor(1 / s)
    grad_x = torch._scaled_mm(g_f8, w_f8.T.contiguous().T, out_dtype=torch.bfloat16,
                              scale_a=g_scale, scale_b=one(w_s), use_fast_accum=False)
    # (M, N) @ (N, K) -> the (M, K) weight gradient, row-major as the weight (float32 accumulation either way)
    grad_w = torch._scaled_mm(g_f8_t, x_f8.T.contiguous().T, out_dtype=w_dtype,
                              scale_a=g_scale, scale_b=one(x_s), use_fast_accum=False)
    return grad_x, grad_w


def _backward_impl(g: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float, w_s: float, grad_s: float,
                   w_dtype: torch.dtype):
    g_f8 = g.mul(grad_s).to(torch.float8_e5m2)  # Inductor fuses this cast with the transposed copy below
    return _grads_from_fp8(g_f8, g_f8.T.contiguous(), g.new_tensor(1 / grad_s, dtype=torch.float32), x_f8, w_f8,
                           x_s, w_s, w_dtype)


@functools.cache
def _compiled(fn):
    """Compiled inside the ops so that the scaling, FP8 casts and transposed copies fuse into a few kernels
    instead of several passes over the (tokens x vocab) gradient. Built at the first call, not at import."""
    key_caches_to_source()
    return torch.compile(fn, dynamic=False)


@torch.library.custom_op("speedrun::fp8_mm", mutates_args=())
def fp8_mm(x: Tensor, w: Tensor, x_s: float, w_s: float, grad_s: float) -> tuple[Tensor, Tensor, Tensor]:
    """x (N, K) bf16/fp32 contiguous, w (M, K) -> (x @ w.T in bf16, x_f8, w_f8)."""
    assert x.is_contiguous() and w.is_contiguous()
    return _compiled(_forward)(x, w, x_s, w_s)


@fp8_mm.register_fake
def _(x, w, x_s, w_s, grad_s):
    assert x.ndim == w.ndim == 2 and x.shape[1] == w.shape[1]
    return (x.new_empty(x.shape[0], w.shape[0], dtype=torch.bfloat16),
            x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn))


@torch.library.custom_op("speedrun::fp8_mm_backward", mutates_args=())
def fp8_mm_backward(g: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float, w_s: float, grad_s: float,
                    w_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return _compiled(_backward_impl)(g.contiguous(), x_f8, w_f8, x_s, w_s, grad_s, w_dtype)


def _fake_grads(x_f8: Tensor, w_f8: Tensor, w_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # Strides must match the real ops': both row-major
    return x_f8.to(torch.bfloat16), w_f8.to(w_dtype)


@fp8_mm_backward.register_fake
def _(g, x_f8, w_f8, x_s, w_s, grad_s, w_dtype):
    return _fake_grads(x_f8, w_f8, w_dtype)


def _setup_context(ctx, inputs, output):
    _, w, x_s, w_s, grad_s = inputs
    _, x_f8, w_f8 = output
    ctx.save_for_backward(x_f8, w_f8)
    ctx.scales = (x_s, w_s, grad_s, w.dtype)
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, *_):
    x_f8, w_f8 = ctx.saved_tensors
    grad_x, grad_w = torch.ops.speedrun.fp8_mm_backward(grad_out, x_f8, w_f8, *ctx.scales)
    return grad_x, grad_w, None, None, None


fp8_mm.register_autograd(_backward, setup_context=_setup_context)


def fp8_linear(x: Tensor, w: Tensor, x_s: float, w_s: float, grad_s: float) -> Tensor:
    out = torch.ops.speedrun.fp8_mm(x.flatten(0, -2).contiguous(), w, x_s, w_s, grad_s)[0]
    return out.view(*x.shape[:-1], w.shape[0])


def fp8_round(t: Tensor, scale: float, dtype: torch.dtype) -> Tensor:
    """t rounded through an FP8 format at `scale`, back in float32 (what the FP8 op multiplies)."""
    return t.float().mul(scale).to(dtype).float().div(scale)


def fp8_reference(x: Tensor, w: Tensor, x_s: float, w_s: float) -> Tensor:
    """Forward of `fp8_mm` in float32 arithmetic on FP8-rounded inputs (runs anywhere)."""
    return fp8_round(x, x_s, torch.float8_e4m3fn) @ fp8_round(w, w_s, torch.float8_e4m3fn).T


# The head + loss op replaces: logits kept for backward, a float32 gradient, its bf16 cast and its e5m2 cast.
@torch.library.custom_op("speedrun::fp8_head_loss", mutates_args=())
def fp8_head_loss(x: Tensor, w: Tensor, targets: Tensor, x_s: float, w_s: float, grad_s: float, cap: float,
                  div: float, extra: Tensor | None = None, extra_weights: Tensor | None = None
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x (N, K) contiguous, w (V, K), targets (N,) -> (mean over N of the cross-entropy of the soft-capped logits
    cap * sigmoid(x @ w.T / div), x_f8, w_f8, g_f8 = grad_s * dloss/dlogits in e5m2). extra (N, J), extra_weights
    (J,) float32: multi-token-prediction targets (-1: none) and weights, read on the device (no recompile)."""
    from speedrun.kernels.softcap_ce import softcap_cross_entropy_with_grad

    assert x.is_contiguous() and w.is_contiguous()
    logits, x_f8, w_f8 = _compiled(_forward)(x, w, x_s, w_s)
    losses, g_f8 = softcap_cross_entropy_with_grad(logits, targets, cap, div, grad_scale=grad_s / x.size(0),
                                                   grad_dtype=torch.float8_e5m2, extra=extra,
                                                   extra_weights=extra_weights)
    return losses.mean(), x_f8, w_f8, g_f8


@fp8_head_loss.register_fake
def _(x, w, targets, x_s, w_s, grad_s, cap, div, extra=None, extra_weights=None):
    assert extra is None or (extra.shape[0] == x.shape[0] and extra_weights is not None
                             and tuple(extra_weights.shape) == (extra.shape[1],))
    return (x.new_empty((), dtype=torch.float32), x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn),
            x.new_empty(x.shape[0], w.shape[0], dtype=torch.float8_e5m2))


@torch.library.custom_op("speedrun::fp8_head_loss_backward", mutates_args=())
def fp8_head_loss_backward(grad_loss: Tensor, g_f8: Tensor, x_f8: Tensor, w_f8: Tensor, x_s: float, w_s: float,
                           grad_s: float, w_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    from speedrun.kernels.transpose import transposed_copy

    g_scale = (grad_loss.float() / grad_s).reshape(())
    # the loss kernel wrote g_f8 already cast: its transposed copy is a plain byte transpose, our kernel's
    return _compiled(_grads_from_fp8)(g_f8, transposed_copy(g_f8), g_scale, x_f8, w_f8, x_s, w_s, w_dtype)


@fp8_head_loss_backward.register_fake
def _(grad_loss, g_f8, x_f8, w_f8, x_s, w_s, grad_s, w_dtype):
    return _fake_grads(x_f8, w_f8, w_dtype)


def _setup_head_loss_context(ctx, inputs, output):
    x_s, w_s, grad_s = inputs[3:6]
    _, x_f8, w_f8, g_f8 = output
    ctx.save_for_backward(g_f8, x_f8, w_f8)
    ctx.scales = (x_s, w_s, grad_s, inputs[1].dtype)
    ctx.set_materialize_grads(False)


def _head_loss_backward(ctx, grad_loss, *_):
    g_f8, x_f8, w_f8 = ctx.saved_tensors
    grad_x, grad_w = torch.ops.speedrun.fp8_head_loss_backward(grad_loss, g_f8, x_f8, w_f8, *ctx.scales)
    return grad_x, grad_w, None, None, None, None, None, None, None, None  # no gradient for targets, scales, mtp


fp8_head_loss.register_autograd(_head_loss_backward, setup_context=_setup_head_loss_context)


def fp8_softcap_cross_entropy(x: Tensor, w: Tensor, targets: Tensor, x_s: float, w_s: float, grad_s: float, cap: float,
                              div: float, extra: Tensor | None = None, extra_weights: Tensor | None = None) -> Tensor:
    """The mean loss of `fp8_head_loss` (GPU, FP8) for x of any leading shape."""
    x2 = x.flatten(0, -2).contiguous()
    return torch.ops.speedrun.fp8_head_loss(x2, w, targets.reshape(-1), x_s, w_s, grad_s, cap, div, extra,
                                            extra_weights)[0]


# The MLP matmuls: FP8 with scales from each tensor's own maximum, as their activations and gradients move over
# training (the head's fixed scales suit one matrix whose range the record measured). Plain torch (autograd.Function),
# so torch.compile fuses each max-reduction and cast into the neighbouring kernels (the ReLU^2 included).
def dynamic_fp8(t: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(t * s cast to `dtype`, 1/s as a float32 0-d tensor), s the largest power of two with s * max|t| <= the
    format's maximum (exact scaling; nothing saturates: e4m3fn has no infinity and would give NaN)."""
    amax = t.detach().abs().amax().float().clamp(min=1e-30)
    scale = torch.exp2(torch.floor(torch.log2(torch.finfo(dtype).max / amax)))
    return (t.float() * scale).to(dtype), scale.reciprocal()


class DynamicFP8Linear(torch.autograd.Function):
    """y = x @ w.T with all three matmuls in FP8 (e4m3 forward, e5m2 gradients). `_scaled_mm` takes its first
    operand row-major and its second column-major, hence the transposed copies in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        x_f8, x_inv = dynamic_fp8(x, torch.float8_e4m3fn)
        w_f8, w_inv = dynamic_fp8(w, torch.float8_e4m3fn)
        out = torch._scaled_mm(x_f8, w_f8.T, scale_a=x_inv, scale_b=w_inv, out_dtype=torch.bfloat16,
                               use_fast_accum=True)
        ctx.save_for_backward(x_f8, x_inv, w_f8, w_inv)
        ctx.x_dtype, ctx.w_dtype = x.dtype, w.dtype
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        x_f8, x_inv, w_f8, w_inv = ctx.saved_tensors
        g_f8, g_inv = dynamic_fp8(g.contiguous(), torch.float8_e5m2)
        grad_x = torch._scaled_mm(g_f8, w_f8.T.contiguous().T, scale_a=g_inv, scale_b=w_inv,
                                  out_dtype=torch.bfloat16, use_fast_accum=False)
        grad_w = torch._scaled_mm(g_f8.T.contiguous(), x_f8.T.contiguous().T, scale_a=g_inv, scale_b=x_inv,
                                  out_dtype=torch.float32, use_fast_accum=False)
        return grad_x.to(ctx.x_dtype), grad_w.to(ctx.w_dtype)


def dynamic_fp8_linear(x: Tensor, w: Tensor) -> Tensor:
    out = DynamicFP8Linear.apply(x.flatten(0, -2).contiguous(), w)
    return out.view(*x.shape[:-1], w.shape[0])


def dynamic_fp8_reference(x: Tensor, w: Tensor) -> Tensor:
    """Forward of `dynamic_fp8_linear` in float32 arithmetic on the FP8-rounded inputs (runs anywhere)."""
    (x_f8, x_inv), (w_f8, w_inv) = dynamic_fp8(x, torch.float8_e4m3fn), dynamic_fp8(w, torch.float8_e4m3fn)
    return (x_f8.float() * x_inv) @ (w_f8.float() * w_inv).T


# The MLP with delayed scaling (recipe fp8_mlp_scaling = "delayed"): the ReLU² output h and its gradient d take
# their scales from the previous step's maxima, so each is cast, and transposed for its weight gradient, in one pass
# (speedrun/kernels/relu2_fp8.py). The input is RMS-normalised without a weight, so |x_i| <= sqrt(dim): a fixed
# power-of-two scale fits it into e4m3 with no maximum to find. The weights keep per-step dynamic scales (small).
DELAYED_MARGIN = 2.0  # one binade of headroom over last step's maximum; more than that saturates
FALLBACK_AMAX = (16.0, 2.0**-12)  # (h, d) before any step has measured them (h ~ relu(N(0, 0.5))^2 at init)


def normed_input_scale(dim: int) -> float:
    """The largest power of two s with s * sqrt(dim) * 1.01 <= e4m3's maximum (1 % for the bf16 norm's rounding)."""
    return 2.0 ** math.floor(math.log2(torch.finfo(torch.float8_e4m3fn).max / (dim**0.5 * 1.01)))


def delayed_scale(amax: Tensor, kind: int, dtype: torch.dtype) -> Tensor:
    """Power-of-two scale (float32, 0-d: Inductor's _scaled_mm wants both scales of one rank) for a tensor whose last
    maximum was `amax` (0: not measured yet)."""
    a = torch.where(amax > 0, amax, FALLBACK_AMAX[kind]).float()
    return torch.exp2(torch.floor(torch.log2(torch.finfo(dtype).max / (DELAYED_MARGIN * a))))


class DelayedFP8MLP(torch.autograd.Function):
    """c_proj(relu(c_fc(x))²) with all six matmuls in FP8. state (2, 2) float32: [previous step, this step] x [h, d]
    maxima, the previous row read here, the current one raised by the kernels."""

    @staticmethod
    def forward(ctx, x: Tensor, w_fc: Tensor, w_proj: Tensor, state: Tensor) -> Tensor:
        from speedrun.kernels.relu2_fp8 import relu2_fp8_op

        e4m3 = torch.float8_e4m3fn
        xs = normed_input_scale(x.size(1))
        big = torch.finfo(e4m3).max
        x_f8 = x.float().mul(xs).clamp(-big, big).to(e4m3)
        x_inv = x.new_tensor(1 / xs, dtype=torch.float32)
        fc_f8, fc_inv = dynamic_fp8(w_fc, e4m3)
        proj_f8, proj_inv = dynamic_fp8(w_proj, e4m3)
        p = torch._scaled_mm(x_f8, fc_f8.T, scale_a=x_inv, scale_b=fc_inv, out_dtype=torch.bfloat16,
                             use_fast_accum=True)
        h_scale = delayed_scale(state[0, 0], 0, e4m3)
        h_f8 = relu2_fp8_op(p, h_scale, state)
        out = torch._scaled_mm(h_f8, proj_f8.T, scale_a=h_scale.reciprocal(), scale_b=proj_inv,
                               out_dtype=torch.bfloat16, use_fast_accum=True)
        d_scale = delayed_scale(state[0, 1], 1, torch.float8_e5m2)
        ctx.save_for_backward(x_f8, x_inv, fc_f8, fc_inv, proj_f8, proj_inv, p, h_scale, d_scale, state)
        ctx.dtypes = (x.dtype, w_fc.dtype, w_proj.dtype)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        from speedrun.kernels.relu2_fp8 import relu2_grad_fp8_op

        x_f8, x_inv, fc_f8, fc_inv, proj_f8, proj_inv, p, h_scale, d_scale, state = ctx.saved_tensors
        g_f8, g_inv = dynamic_fp8(g.contiguous(), torch.float8_e5m2)  # (N, dim): small beside (N, hidden)
        grad_h = torch._scaled_mm(g_f8, proj_f8.T.contiguous().T, scale_a=g_inv, scale_b=proj_inv,
                                  out_dtype=torch.bfloat16, use_fast_accum=False)
        # d and its transpose, and the forward's ReLU² cast again, transposed (not kept: memory), from one read of p
        d_f8, d_t_f8, h_t_f8 = relu2_grad_fp8_op(grad_h, p, d_scale, state, h_scale)
        grad_proj = torch._scaled_mm(g_f8.T.contiguous(), h_t_f8.T, scale_a=g_inv, scale_b=h_scale.reciprocal(),
                                     out_dtype=torch.float32, use_fast_accum=False)
        d_inv = d_scale.reciprocal()
        grad_x = torch._scaled_mm(d_f8, fc_f8.T.contiguous().T, scale_a=d_inv, scale_b=fc_inv,
                                  out_dtype=torch.bfloat16, use_fast_accum=False)
        grad_fc = torch._scaled_mm(d_t_f8, x_f8.T.contiguous().T, scale_a=d_inv, scale_b=x_inv,
                                   out_dtype=torch.float32, use_fast_accum=False)
        x_dtype, fc_dtype, proj_dtype = ctx.dtypes
        return grad_x.to(x_dtype), grad_fc.to(fc_dtype), grad_proj.to(proj_dtype), None


def delayed_fp8_mlp(x: Tensor, w_fc: Tensor, w_proj: Tensor, state: Tensor) -> Tensor:
    """The MLP of a normalised x (any leading shape) in FP8 with delayed scales; state: the MLP's (2, 2) maxima."""
    out = DelayedFP8MLP.apply(x.flatten(0, -2).contiguous(), w_fc, w_proj, state)
    return out.view(*x.shape[:-1], w_proj.shape[0])
