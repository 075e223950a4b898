"""Soft-capped cross-entropy whose forward pass also writes the logits' gradient: one Triton kernel.

For logits l (N, V), targets t and multi-token-prediction extra targets e_ij (-1 where absent) with weights w_j,
s = sigmoid(l / div), z = cap * s (the soft-capped logits) and lse_i = logsumexp(z_i):

    loss_i      = (lse_i - z_i[t_i]) + sum_j w_j (lse_i - z_i[e_ij])          over the e_ij >= 0
    dloss_i/dl  = ((1 + sum_j w_j) softmax(z_i) - onehot(t_i) - sum_j w_j onehot(e_ij)) * (cap / div) * s_i * (1 - s_i)

The extra terms read the same row's logits: a few scalar loads per row, nothing more per vocabulary entry.
Computing the gradient in the forward pass means the (N x V) logits are read twice and never kept for the
backward pass, and the gradient is written once, already scaled and in the dtype its consumer wants (FP8 e5m2
for the FP8 head's backward matmuls) instead of as float32 that a later kernel casts.

No running maximum is needed: z lies in [0, cap], so exp(z - cap) lies in [e^-cap, 1] and a row's sum neither
overflows nor (for cap <= MAX_CAP) underflows. `softcap_cross_entropy_reference` is the same arithmetic in
PyTorch (runs anywhere; the CPU-checkable twin).

On a GPU the sigmoid is 0.5 + 0.5 tanh(x / 2) with the hardware's approximate tanh (`fast_sigmoid`): one
special-function instruction where the exact form takes two (an exp and a reciprocal), and the kernel is bound by
those (three an element a pass before, two now: 3.04 against 4.36 ms at 49,152 x 50,304 on an H200). The tanh's
error, about 2^-11 (PTX ISA), moves s by 2^-12 and z by cap * 2^-12 (0.0073 at cap 30), less than the bf16 logits' own
rounding moves a large logit's z; tests/gpu holds every loss and gradient entry to the bounds that follow (measured: loss
errors up to 1.5e-4, gradients within 4.5e-6 relative). Validation never runs this kernel: val losses are unchanged.
"""

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the reference still works
    triton = None

MAX_CAP = 60.0  # exp(-cap) stays a normal float32


def softcap_cross_entropy_reference(logits: Tensor, targets: Tensor, cap: float, div: float, grad_scale: float = 1.0,
                                    extra: Tensor | None = None, extra_weights: Tensor | None = None
                                    ) -> tuple[Tensor, Tensor]:
    """(per-row losses float32 (N,), grad_scale * dloss_i/dlogits float32 (N, V)), computed in float32.
    extra (N, J) extra targets (-1: none) weighted by extra_weights (J,): the multi-token-prediction terms."""
    lf = logits.float()
    s = torch.sigmoid(lf / div)
    z = cap * s
    lse = torch.logsumexp(z, dim=-1)
    losses = lse - z.gather(-1, targets.long()[:, None])[:, 0]
    d = torch.softmax(z, dim=-1)
    rows = torch.arange(len(targets), device=d.device)
    if extra is not None and extra.size(1):
        w = torch.where(extra >= 0, extra_weights.float()[None, :], 0.0)  # (N, J): 0 where there is no target
        e = extra.long().clamp(min=0)
        losses = losses + (w * (lse[:, None] - z.gather(-1, e))).sum(-1)
        d = d * (1 + w.sum(-1, keepdim=True))
        d.scatter_add_(-1, e, -w)
    d[rows, targets.long()] -= 1.0
    return losses, d * (cap / div) * s * (1 - s) * grad_scale


if triton is not None:

    @triton.jit
    def _sigmoid(x, FAST: tl.constexpr):
        """sigmoid(x); FAST: 0.5 + 0.5 tanh(x / 2) with PTX's tanh.approx.f32 (GPU only: not in the interpreter)."""
        if FAST:
            t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [0.5 * x], dtype=tl.float32,
                                          is_pure=True, pack=1)
            return 0.5 + 0.5 * t
        else:
            return tl.sigmoid(x)

    @triton.jit
    def _softcap_ce_kernel(logits_ptr, targets_ptr, losses_ptr, grad_ptr, extra_ptr, weights_ptr, V,
                           logits_row_stride, grad_row_stride, extra_row_stride, cap, inv_div, grad_scale,
                           BLOCK: tl.constexpr, NUM_EXTRA: tl.constexpr, FAST: tl.constexpr):
        # NUM_EXTRA is a compile-time constant: with 0 every extra-target line below is compiled out and the
        # kernel is the plain one (extra_ptr and weights_ptr are then never read).
        row = tl.program_id(0).to(tl.int64)
        row_logits = logits_ptr + row * logits_row_stride
        # pass 1: sum of exp(z - cap) over the row (kept in L2 for pass 2)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < V
            raw = tl.load(row_logits + cols, mask=inside, other=0.0, eviction_policy="evict_last").to(tl.float32)
            z = cap * _sigmoid(raw * inv_div, FAST)
            acc += tl.where(inside, tl.exp(z - cap), 0.0)
        lse = cap + tl.log(tl.sum(acc, axis=0))
        target = tl.load(targets_ptr + row)
        z_target = cap * _sigmoid(tl.load(row_logits + target).to(tl.float32) * inv_div, FAST)
        loss = lse - z_target
        extra_sum = 0.0  # sum of the weights of this row's present extra targets
        if NUM_EXTRA > 0:
            for j in tl.static_range(NUM_EXTRA):
                e = tl.load(extra_ptr + row * extra_row_stride + j)
                w = tl.where(e >= 0, tl.load(weights_ptr + j), 0.0)
                z_e = cap * _sigmoid(tl.load(row_logits + tl.maximum(e, 0)).to(tl.float32) * inv_div, FAST)
                loss += w * (lse - z_e)
                extra_sum += w
        tl.store(losses_ptr + row, loss)
        # pass 2: the softmax part of the gradient, scaled, in the output's dtype. (1 + sum w) softmax(z) is
        # exp(z - lse + log(1 + sum w)); the one-hot terms of the target and the extra targets touch at most
        # 1 + NUM_EXTRA columns, so they are not compared per element here but rewritten after the loop.
        row_grad = grad_ptr + row * grad_row_stride
        slope = cap * inv_div * grad_scale
        lse_p = lse - tl.log(1.0 + extra_sum)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < V
            raw = tl.load(row_logits + cols, mask=inside, other=0.0, eviction_policy="evict_first").to(tl.float32)
            s = _sigmoid(raw * inv_div, FAST)
            d = tl.exp(cap * s - lse_p) * (slope * s * (1.0 - s))
            tl.store(row_grad + cols, d.to(grad_ptr.dtype.element_ty), mask=inside)
        # the one-hot columns: each written whole (softmax part minus every one-hot weight that falls on it, so
        # coinciding targets give the same value), after a barrier so that it lands after the loop's store of it
        tl.debug_barrier()
        _write_onehot_column(target, target, row_logits, row_grad, extra_ptr + row * extra_row_stride, weights_ptr,
                             cap, inv_div, lse_p, slope, NUM_EXTRA, FAST)
        if NUM_EXTRA > 0:
            for j in tl.static_range(NUM_EXTRA):
                e = tl.load(extra_ptr + row * extra_row_stride + j)
                if e >= 0:
                    _write_onehot_column(e, target, row_logits, row_grad, extra_ptr + row * extra_row_stride,
                                         weights_ptr, cap, inv_div, lse_p, slope, NUM_EXTRA, FAST)

    @triton.jit
    def _write_onehot_column(col, target, row_logits, row_grad, row_extra, weights_ptr, cap, inv_div, lse_p, slope,
                             NUM_EXTRA: tl.constexpr, FAST: tl.constexpr):
        """grad[col] = ((1 + sum w) softmax(z)[col] - [col == target] - sum_j w_j [col == e_j]) * slope s (1 - s)."""
        s = _sigmoid(tl.load(row_logits + col).to(tl.float32) * inv_div, FAST)
        p = tl.exp(cap * s - lse_p) - tl.where(col == target, 1.0, 0.0)
        if NUM_EXTRA > 0:
            for j in tl.static_range(NUM_EXTRA):
                p -= tl.where(tl.load(row_extra + j) == col, tl.load(weights_ptr + j), 0.0)
        tl.store(row_grad + col, (p * (slope * s * (1.0 - s))).to(row_grad.dtype.element_ty))


if triton is not None:

    @triton.jit
    def _softcap_ce_tiled_kernel(logits_ptr, targets_ptr, losses_ptr, grad_ptr, grad_t_ptr, extra_ptr, weights_ptr,
                                 N, V, logits_row_stride, grad_row_stride, grad_t_row_stride, extra_row_stride, cap,
                                 inv_div, grad_scale, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
                                 NUM_EXTRA: tl.constexpr, FAST: tl.constexpr):
        """`_softcap_ce_kernel` over BLOCK_N rows a program, which also writes the gradient transposed: a tile's
        column of BLOCK_N bytes is a whole memory sector of the transposed copy (e5m2), so that copy costs one write,
        not a transposing kernel's read and write (1.93 ms at 49,152 x 50,304 on an H200, experiments part 36). The
        rows no longer fit in L2 between the passes, so pass 2 reads the logits again. The one-hot terms are taken
        per element (a compare against each row's 1 + NUM_EXTRA targets), inside the tile."""
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        live = rows < N
        rows = rows.to(tl.int64)
        row_logits = logits_ptr + rows * logits_row_stride
        # pass 1: each row's sum of exp(z - cap)
        acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            inside = live[:, None] & (cols[None, :] < V)
            raw = tl.load(row_logits[:, None] + cols[None, :], mask=inside, other=0.0).to(tl.float32)
            z = cap * _sigmoid(raw * inv_div, FAST)
            acc += tl.where(inside, tl.exp(z - cap), 0.0)
        lse = cap + tl.log(tl.maximum(tl.sum(acc, axis=1), 1e-30))  # rows past N: never stored
        target = tl.load(targets_ptr + rows, mask=live, other=0)
        z_target = cap * _sigmoid(tl.load(row_logits + target, mask=live, other=0.0).to(tl.float32) * inv_div, FAST)
        loss = lse - z_target
        extra_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
        if NUM_EXTRA > 0:
            for j in tl.static_range(NUM_EXTRA):
                e = tl.load(extra_ptr + rows * extra_row_stride + j, mask=live, other=-1)
                w = tl.where(e >= 0, tl.load(weights_ptr + j), 0.0)
                z_e = cap * _sigmoid(tl.load(row_logits + tl.maximum(e, 0), mask=live, other=0.0).to(tl.float32)
                                     * inv_div, FAST)
                loss += w * (lse - z_e)
                extra_sum += w
        tl.store(losses_ptr + rows, loss, mask=live)
        # pass 2: the gradient, both layouts
        slope = cap * inv_div * grad_scale
        lse_p = lse - tl.log(1.0 + extra_sum)
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            inside = live[:, None] & (cols[None, :] < V)
            raw = tl.load(row_logits[:, None] + cols[None, :], mask=inside, other=0.0).to(tl.float32)
            s = _sigmoid(raw * inv_div, FAST)
            p = tl.exp(cap * s - lse_p[:, None]) - tl.where(cols[None, :] == target[:, None], 1.0, 0.0)
            if NUM_EXTRA > 0:
                for j in tl.static_range(NUM_EXTRA):
                    e = tl.load(extra_ptr + rows * extra_row_stride + j, mask=live, other=-1)
                    w = tl.where(e >= 0, tl.load(weights_ptr + j), 0.0)
                    p -= tl.where(cols[None, :] == e[:, None], w[:, None], 0.0)
            d = (p * (slope * s * (1.0 - s))).to(grad_ptr.dtype.element_ty)
            tl.store(grad_ptr + rows[:, None] * grad_row_stride + cols[None, :], d, mask=inside)
            tl.store(grad_t_ptr + cols[None, :].to(tl.int64) * grad_t_row_stride + rows[:, None], d, mask=inside)


def softcap_cross_entropy_with_grads(logits: Tensor, targets: Tensor, cap: float, div: float, grad_scale: float = 1.0,
                                     grad_dtype: torch.dtype = torch.bfloat16, block_n: int = 32, block_v: int = 128,
                                     num_warps: int = 4, extra: Tensor | None = None,
                                     extra_weights: Tensor | None = None, fast_sigmoid: bool | None = None
                                     ) -> tuple[Tensor, Tensor, Tensor]:
    """`softcap_cross_entropy_with_grad`, and the gradient transposed as well: (losses (N,), grad (N, V), grad.T
    contiguous (V, N)). The FP8 head's weight gradient needs that layout (`_scaled_mm` takes its second operand
    column-major)."""
    num_extra = _check_inputs(logits, targets, cap, extra, extra_weights)
    N, V = logits.shape
    losses = torch.empty(N, dtype=torch.float32, device=logits.device)
    grad = torch.empty(N, V, dtype=grad_dtype, device=logits.device)
    grad_t = torch.empty(V, N, dtype=grad_dtype, device=logits.device)
    if num_extra:
        extra, weights = extra.contiguous(), extra_weights.float().contiguous()
    else:  # never read (NUM_EXTRA = 0)
        extra, weights = targets, losses
    if N:
        _softcap_ce_tiled_kernel[(triton.cdiv(N, block_n),)](
            logits, targets, losses, grad, grad_t, extra, weights, N, V, logits.stride(0), grad.stride(0),
            grad_t.stride(0), extra.stride(0), float(cap), 1.0 / div, float(grad_scale), BLOCK_N=block_n,
            BLOCK_V=block_v, NUM_EXTRA=num_extra, FAST=logits.is_cuda if fast_sigmoid is None else fast_sigmoid,
            num_warps=num_warps)
    return losses, grad, grad_t


def _check_inputs(logits: Tensor, targets: Tensor, cap: float, extra: Tensor | None, extra_weights: Tensor | None
                  ) -> int:
    """The number of extra targets a row has; raises on inputs the kernels cannot take."""
    if logits.ndim != 2 or logits.stride(1) != 1 or targets.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, V) with unit column stride and targets (N,); got "
                         f"{tuple(logits.shape)} / stride {logits.stride()} and {tuple(targets.shape)}")
    num_extra = 0 if extra is None else extra.size(1) if extra.ndim == 2 else -1
    if extra is not None and (num_extra < 0 or extra.size(0) != logits.size(0) or extra_weights is None
                              or tuple(extra_weights.shape) != (num_extra,) or extra.is_floating_point()):
        raise ValueError(f"extra targets must be integers (N, J) = ({logits.size(0)}, J) with weights (J,); got "
                         f"{tuple(extra.shape)} {extra.dtype} and "
                         f"{None if extra_weights is None else tuple(extra_weights.shape)}")
    if not 0 < cap <= MAX_CAP:
        raise ValueError(f"soft cap {cap} outside (0, {MAX_CAP}]: the kernel's fixed exp offset needs a moderate cap")
    if triton is None:
        raise RuntimeError("softcap_cross_entropy_with_grad needs Triton; use softcap_cross_entropy_reference")
    return num_extra


def softcap_cross_entropy_with_grad(logits: Tensor, targets: Tensor, cap: float, div: float, grad_scale: float = 1.0,
                                    grad_dtype: torch.dtype = torch.bfloat16, block: int = 2048, num_warps: int = 4,
                                    extra: Tensor | None = None, extra_weights: Tensor | None = None,
                                    fast_sigmoid: bool | None = None) -> tuple[Tensor, Tensor]:
    """logits (N, V) with unit stride along V, targets (N,) in [0, V) -> (per-row losses float32 (N,),
    grad_scale * dloss_i/dlogits (N, V) in `grad_dtype`). Needs Triton (a CUDA GPU, or TRITON_INTERPRET=1).
    extra (N, J) integer multi-token-prediction targets in [0, V) or -1 (none), extra_weights (J,) float32 on the
    same device (read there, so a weight can change between calls without a recompile).
    Default launch: the fastest of blocks 2048-8192 x 4-16 warps on an H100 at 49,152 x 50,304 (4.70 ms against
    4.93 ms for 4096 x 8, exact sigmoid; `benchmarks/head_loss.py`). Bound by its exp/sigmoid throughput.
    fast_sigmoid: the approximate tanh (module docstring); None: on CUDA tensors (the interpreter has no PTX)."""
    num_extra = _check_inputs(logits, targets, cap, extra, extra_weights)
    N, V = logits.shape
    losses = torch.empty(N, dtype=torch.float32, device=logits.device)
    grad = torch.empty(N, V, dtype=grad_dtype, device=logits.device)
    if num_extra:
        extra, weights = extra.contiguous(), extra_weights.float().contiguous()
    else:  # never read (NUM_EXTRA = 0)
        extra, weights = targets, losses
    if N:
        _softcap_ce_kernel[(N,)](logits, targets, losses, grad, extra, weights, V, logits.stride(0), grad.stride(0),
                                 extra.stride(0), float(cap), 1.0 / div, float(grad_scale), BLOCK=block,
                                 NUM_EXTRA=num_extra, FAST=logits.is_cuda if fast_sigmoid is None else fast_sigmoid,
                                 num_warps=num_warps)
    return losses, grad
