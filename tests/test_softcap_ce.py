"""The fused soft-capped cross-entropy: its PyTorch reference against autograd, and the Triton kernel against the
reference in Triton's interpreter (CPU; skipped where Triton is not installed). On the GPU: tests/gpu/test_gpu.py."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

from speedrun.kernels.softcap_ce import (
    MAX_CAP,
    softcap_cross_entropy_reference,
    softcap_cross_entropy_with_grad,
)

CAP, DIV = 30.0, 7.5


def autograd_loss_and_grad(logits: torch.Tensor, targets: torch.Tensor, cap: float, div: float):
    l = logits.double().requires_grad_()
    losses = F.cross_entropy(cap * torch.sigmoid(l / div), targets, reduction="none")
    losses.sum().backward()  # rows are independent: the grad of the sum is every row's own gradient
    return losses.detach(), l.grad


@pytest.mark.parametrize("scale", [1.0, 10.67])
def test_reference_matches_autograd(scale):
    torch.manual_seed(0)
    logits = torch.randn(9, 301) * 12
    targets = torch.randint(0, 301, (9,))
    targets[0], targets[1] = 0, 300  # first and last column
    losses, grad = softcap_cross_entropy_reference(logits, targets, CAP, DIV, grad_scale=scale)
    want_losses, want_grad = autograd_loss_and_grad(logits, targets, CAP, DIV)
    assert losses.dtype == grad.dtype == torch.float32
    torch.testing.assert_close(losses.double(), want_losses, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), want_grad * scale, rtol=1e-4, atol=1e-6)


def explicit_mtp_losses(logits, targets, extra, weights, cap, div):
    """Row by row in float64: CE(z_i, t_i) + sum over present extra targets e_ij of w_j * CE(z_i, e_ij)."""
    z = cap * torch.sigmoid(logits.double() / div)
    rows = []
    for i in range(len(targets)):
        loss = F.cross_entropy(z[i], targets[i])
        for j in range(extra.size(1)):
            if extra[i, j] >= 0:
                loss = loss + float(weights[j]) * F.cross_entropy(z[i], extra[i, j])
        rows.append(loss)
    return torch.stack(rows)


@pytest.mark.parametrize("num_extra", [1, 2, 3])
def test_reference_with_extra_targets_matches_explicit_loss_and_autograd(num_extra):
    """The multi-token-prediction terms: the reference's losses equal the row-by-row sum of weighted
    cross-entropies, and its closed-form gradient equals autograd's."""
    g = torch.Generator().manual_seed(num_extra)
    N, V = 11, 203
    logits = torch.randn(N, V, generator=g) * 12
    targets = torch.randint(0, V, (N,), generator=g)
    extra = torch.randint(0, V, (N, num_extra), generator=g)
    extra[0] = -1  # no extra target at all
    extra[1, -1] = -1  # the last one missing
    extra[2, 0] = targets[2]  # an extra target equal to the next token
    extra[3, 0], extra[3, -1] = 0, V - 1
    weights = torch.tensor([0.5, 0.3, 0.05][:num_extra])
    losses, grad = softcap_cross_entropy_reference(logits, targets, CAP, DIV, grad_scale=2.5, extra=extra,
                                                   extra_weights=weights)
    l = logits.double().requires_grad_()
    want = explicit_mtp_losses(l, targets, extra, weights, CAP, DIV)
    want.sum().backward()
    torch.testing.assert_close(losses.double(), want.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), l.grad * 2.5, rtol=1e-4, atol=1e-6)
    plain, plain_grad = softcap_cross_entropy_reference(logits, targets, CAP, DIV, grad_scale=2.5)
    assert torch.equal(losses[0], plain[0]) and (losses[2:] > plain[2:]).all()
    # zero weights: the plain loss and gradient
    zero = softcap_cross_entropy_reference(logits, targets, CAP, DIV, 2.5, extra, weights * 0)
    assert torch.equal(zero[0], plain) and torch.equal(zero[1], plain_grad)


def test_reference_rows_sum_to_zero_and_target_is_negative():
    """softmax - onehot sums to 0 per row before the sigmoid's slope; the target's entry is the only negative."""
    torch.manual_seed(1)
    logits, targets = torch.randn(5, 64) * 3, torch.randint(0, 64, (5,))
    _, grad = softcap_cross_entropy_reference(logits, targets, CAP, DIV)
    negative = grad < 0
    assert negative.sum() == 5 and negative[torch.arange(5), targets].all()


def test_kernel_rejects_bad_inputs():
    logits, targets = torch.zeros(4, 10), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="soft cap"):
        softcap_cross_entropy_with_grad(logits, targets, MAX_CAP * 2, DIV)
    with pytest.raises(ValueError, match="unit column stride"):
        softcap_cross_entropy_with_grad(logits.T, targets, CAP, DIV)
    with pytest.raises(ValueError, match=r"targets \(N,\)"):
        softcap_cross_entropy_with_grad(logits, targets[:3], CAP, DIV)
    extra, weights = torch.zeros(4, 2, dtype=torch.long), torch.ones(2)
    for bad in [dict(extra=extra), dict(extra=extra[:3], extra_weights=weights),
                dict(extra=extra, extra_weights=weights[:1]), dict(extra=extra.float(), extra_weights=weights),
                dict(extra=extra[:, 0], extra_weights=weights)]:
        with pytest.raises(ValueError, match="extra targets"):
            softcap_cross_entropy_with_grad(logits, targets, CAP, DIV, **bad)


INTERPRETED = textwrap.dedent("""
    import json, torch
    from speedrun.kernels.softcap_ce import softcap_cross_entropy_reference as ref, softcap_cross_entropy_with_grad as fused
    torch.manual_seed(0)
    out = {}
    for N, V, block, dtype in [(6, 1000, 256, torch.float32), (3, 4096, 1024, torch.float32), (5, 777, 512, torch.bfloat16)]:
        logits = (torch.randn(N, V) * 15).bfloat16()
        logits[0, :5] = torch.tensor([80.0, -80.0, 0.0, 1e4, -1e4])  # saturated sigmoids
        targets = torch.randint(0, V, (N,))
        targets[0], targets[-1] = 0, V - 1
        losses, grad = fused(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block=block)
        want_losses, want_grad = ref(logits, targets, 30.0, 7.5, grad_scale=3.0)
        out[f"{N}x{V}/{block}/{dtype}"] = dict(
            loss_err=(losses - want_losses).abs().max().item(),
            grad_err=((grad.float() - want_grad).abs() / (want_grad.abs() + 1e-6)).max().item(),
            dtype=str(grad.dtype), shape=list(grad.shape))
    print(json.dumps(out))
""")


def test_triton_kernel_matches_reference_in_interpreter(run_interpreted):
    done, results = run_interpreted(INTERPRETED)
    assert done.returncode == 0, done.stderr[-3000:]
    for case, r in results.items():
        N, V = map(int, case.split("/")[0].split("x"))
        assert r["shape"] == [N, V], case
        assert r["loss_err"] < 1e-4, (case, r)
        tolerance = 1e-5 if "float32" in case else 2**-7  # bf16 output: within one bf16 step
        assert r["grad_err"] < tolerance, (case, r)


# The kernel as it was before the multi-token-prediction terms (commit cae4521): with no extra targets the new
# kernel must give exactly its bits.
INTERPRETED_MTP = textwrap.dedent("""
    import json, torch, triton, triton.language as tl
    from speedrun.kernels.softcap_ce import softcap_cross_entropy_reference as ref, softcap_cross_entropy_with_grad as fused

    @triton.jit
    def plain_kernel(logits_ptr, targets_ptr, losses_ptr, grad_ptr, V, logits_row_stride, grad_row_stride,
                     cap, inv_div, grad_scale, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        row_logits = logits_ptr + row * logits_row_stride
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < V
            raw = tl.load(row_logits + cols, mask=inside, other=0.0, eviction_policy="evict_last").to(tl.float32)
            z = cap * tl.sigmoid(raw * inv_div)
            acc += tl.where(inside, tl.exp(z - cap), 0.0)
        lse = cap + tl.log(tl.sum(acc, axis=0))
        target = tl.load(targets_ptr + row)
        z_target = cap * tl.sigmoid(tl.load(row_logits + target).to(tl.float32) * inv_div)
        tl.store(losses_ptr + row, lse - z_target)
        row_grad = grad_ptr + row * grad_row_stride
        slope = cap * inv_div * grad_scale
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < V
            raw = tl.load(row_logits + cols, mask=inside, other=0.0, eviction_policy="evict_first").to(tl.float32)
            s = tl.sigmoid(raw * inv_div)
            p = tl.exp(cap * s - lse)
            d = (p - tl.where(cols == target, 1.0, 0.0)) * (slope * s * (1.0 - s))
            tl.store(row_grad + cols, d.to(grad_ptr.dtype.element_ty), mask=inside)

    torch.manual_seed(0)
    out = {}
    for N, V, block, J, dtype in [(7, 1000, 256, 1, torch.float32), (5, 777, 512, 2, torch.float32),
                                  (3, 301, 128, 2, torch.bfloat16), (4, 515, 256, 3, torch.float32)]:
        logits = (torch.randn(N, V) * 15).bfloat16()
        logits[0, :5] = torch.tensor([80.0, -80.0, 0.0, 1e4, -1e4])  # saturated sigmoids
        targets = torch.randint(0, V, (N,))
        targets[0], targets[-1] = 0, V - 1
        extra = torch.randint(0, V, (N, J))
        extra[0, 0], extra[-1, -1] = 3, V - 1  # a saturated column, the last column
        extra[1] = -1  # no extra target
        extra[2, -1] = -1
        extra[-1, 0] = targets[-1]  # the same token as the next-token target
        weights = torch.tensor([0.5, 0.25, 0.125][:J])
        losses, grad = fused(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block=block,
                             extra=extra, extra_weights=weights)
        want_losses, want_grad = ref(logits, targets, 30.0, 7.5, grad_scale=3.0, extra=extra, extra_weights=weights)
        plain_losses, plain_grad = fused(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block=block)
        zero_losses, zero_grad = fused(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block=block,
                                       extra=extra, extra_weights=weights * 0)
        old_losses = torch.empty(N)
        old_grad = torch.empty(N, V, dtype=dtype)
        plain_kernel[(N,)](logits, targets, old_losses, old_grad, V, logits.stride(0), old_grad.stride(0),
                           30.0, 1 / 7.5, 3.0, BLOCK=block)
        out[f"{N}x{V}/{block}/J{J}/{dtype}"] = dict(
            loss_err=(losses - want_losses).abs().max().item(),
            grad_err=((grad.float() - want_grad).abs() / (want_grad.abs() + 1e-6)).max().item(),
            mtp_adds=(losses - plain_losses).min().item(),
            plain_is_old=torch.equal(plain_losses, old_losses) and torch.equal(plain_grad, old_grad),
            zero_is_plain=torch.equal(zero_losses, plain_losses) and torch.equal(zero_grad, plain_grad),
            no_extra_row=(losses[1] == plain_losses[1]).item(),
            shape=list(grad.shape), dtype=str(grad.dtype))
    print(json.dumps(out))
""")


def test_triton_kernel_with_extra_targets_matches_reference_in_interpreter(run_interpreted):
    """Extra targets (1-3 of them, some absent) against the reference; with none, or with zero weights, exactly the
    bits of the kernel as it was before them."""
    done, results = run_interpreted(INTERPRETED_MTP)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(results) == 4
    for case, r in results.items():
        N, V = map(int, case.split("/")[0].split("x"))
        assert r["shape"] == [N, V] and r["dtype"] in case, case
        assert r["loss_err"] < 1e-4, (case, r)
        assert r["grad_err"] < (1e-5 if "float32" in case else 2**-7), (case, r)
        assert r["mtp_adds"] >= 0 and r["no_extra_row"], (case, r)
        assert r["plain_is_old"] and r["zero_is_plain"], (case, r)


# The tiled kernel (several rows a program) writes the gradient in both layouts: against the reference, and against
# the row kernel on the same inputs, with and without extra targets, with a last tile of rows only partly inside.
INTERPRETED_TILED = textwrap.dedent("""
    import json, torch
    from speedrun.kernels.softcap_ce import (softcap_cross_entropy_reference as ref, softcap_cross_entropy_with_grad as
                                             rows, softcap_cross_entropy_with_grads as tiled)
    torch.manual_seed(0)
    out = {}
    for N, V, bn, bv, J, dtype in [(7, 1000, 4, 256, 0, torch.float32), (37, 777, 16, 128, 2, torch.float32),
                                   (5, 301, 8, 64, 2, torch.bfloat16), (33, 515, 32, 128, 3, torch.float32)]:
        logits = (torch.randn(N, V) * 15).bfloat16()
        logits[0, :5] = torch.tensor([80.0, -80.0, 0.0, 1e4, -1e4])  # saturated sigmoids
        targets = torch.randint(0, V, (N,))
        targets[0], targets[-1] = 0, V - 1
        kw = {}
        if J:
            extra = torch.randint(0, V, (N, J))
            extra[1], extra[-1, 0], extra[0, 0] = -1, targets[-1], 3  # none; the next token again; saturated
            kw = dict(extra=extra, extra_weights=torch.tensor([0.5, 0.25, 0.125][:J]))
        losses, grad, grad_t = tiled(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block_n=bn,
                                     block_v=bv, **kw)
        want_losses, want_grad = ref(logits, targets, 30.0, 7.5, grad_scale=3.0, **kw)
        row_losses, row_grad = rows(logits, targets, 30.0, 7.5, grad_scale=3.0, grad_dtype=dtype, block=256, **kw)
        out[f"{N}x{V}/{bn}x{bv}/J{J}/{dtype}"] = dict(
            loss_err=(losses - want_losses).abs().max().item(),
            grad_err=((grad.float() - want_grad).abs() / (want_grad.abs() + 1e-6)).max().item(),
            transposed=torch.equal(grad_t, grad.t().contiguous()), shapes=[list(grad.shape), list(grad_t.shape)],
            vs_rows=max((losses - row_losses).abs().max().item(), (grad.float() - row_grad.float()).abs().max().item()))
    print(json.dumps(out))
""")


def test_tiled_kernel_writes_both_layouts_and_matches_reference_in_interpreter(run_interpreted):
    done, results = run_interpreted(INTERPRETED_TILED)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(results) == 4
    for case, r in results.items():
        N, V = map(int, case.split("/")[0].split("x"))
        assert r["shapes"] == [[N, V], [V, N]] and r["transposed"], (case, r)
        assert r["loss_err"] < 1e-4, (case, r)
        assert r["grad_err"] < (1e-5 if "float32" in case else 2**-7), (case, r)
        assert r["vs_rows"] < 1e-4, (case, r)  # the row kernel's sums run in another order: not its bits
