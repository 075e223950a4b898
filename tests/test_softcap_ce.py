"""The fused soft-capped cross-entropy: its PyTorch reference against autograd, and the Triton kernel against the
reference in Triton's interpreter (CPU; skipped where Triton is not installed). On the GPU: tests/gpu/test_gpu.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_triton_kernel_matches_reference_in_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")  # read when the kernel is defined: a fresh process
    done = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for case, r in results.items():
        N, V = map(int, case.split("/")[0].split("x"))
        assert r["shape"] == [N, V], case
        assert r["loss_err"] < 1e-4, (case, r)
        tolerance = 1e-5 if "float32" in case else 2**-7  # bf16 output: within one bf16 step
        assert r["grad_err"] < tolerance, (case, r)
