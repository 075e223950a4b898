"""The symmetric product X X^T (and b A + c A A) of Newton-Schulz: its PyTorch reference, the CPU fallback of the
`symmetric_kernel` flag, and the Triton kernel against the reference in Triton's interpreter (CPU; skipped where
Triton is not installed). On the GPU: benchmarks/newton_schulz.py checks the kernel against torch at full size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from speedrun.kernels.symmetric_matmul import (
    symmetric_kernel_usable,
    symmetric_matmul,
    symmetric_matmul_reference,
)
from speedrun.optim.muon import Muon, newton_schulz, polar_express


def test_reference_is_the_product_and_exactly_symmetric():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, 29, generator=g)
    d = torch.randn(3, 17, 17, generator=g)
    d = d + d.mT
    c = symmetric_matmul_reference(x, alpha=0.5, beta=-2.0, addend=d)
    assert c.shape == (3, 17, 17) and c.dtype == torch.float32
    assert torch.equal(c, c.mT)
    want = 0.5 * x.double() @ x.double().mT - 2.0 * d.double()
    torch.testing.assert_close(c.double(), want, rtol=1e-5, atol=1e-5)
    xb = x.bfloat16()
    cb = symmetric_matmul_reference(xb)
    assert cb.dtype == torch.bfloat16 and torch.equal(cb, cb.mT)


def test_kernel_rejects_bad_inputs():
    with pytest.raises(ValueError, match="bfloat16, float16 or float32"):
        symmetric_matmul(torch.zeros(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="bfloat16, float16 or float32"):
        symmetric_matmul(torch.zeros(4))
    with pytest.raises(ValueError, match="addend must be"):
        symmetric_matmul(torch.zeros(2, 4, 6), beta=1.0, addend=torch.zeros(2, 6, 6))


def test_cpu_ignores_the_flag():
    """Without the interpreter a CPU tensor cannot take the kernel: newton_schulz computes the torch products."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("under the interpreter the kernel does run on CPU tensors")
    G = torch.randn(2, 24, 40, generator=torch.Generator().manual_seed(1))
    assert not symmetric_kernel_usable(G)
    for dtype in (torch.float32, torch.bfloat16):
        assert torch.equal(newton_schulz(G, dtype=dtype, symmetric_kernel=True), newton_schulz(G, dtype=dtype))
        assert torch.equal(polar_express(G, dtype=dtype, symmetric_kernel=True), polar_express(G, dtype=dtype))


@pytest.mark.parametrize("orthogonalizer", ["newton_schulz", "polar_express"])
def test_muon_flag_on_cpu_steps_as_without(orthogonalizer):
    def run(flag: bool):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(3, 16, 16)), torch.nn.Parameter(torch.randn(48, 16))]
        opt = Muon(params, lr=0.02, ns_dtype=torch.float32, orthogonalizer=orthogonalizer, ns_symmetric_kernel=flag)
        for _ in range(2):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
        return [p.detach().clone() for p in params]

    for a, b in zip(run(True), run(False)):
        assert torch.equal(a, b)


INTERPRETED = textwrap.dedent("""
    import json, torch
    from speedrun.kernels.symmetric_matmul import symmetric_matmul as sym, symmetric_matmul_reference as ref
    from speedrun.kernels.symmetric_matmul import symmetric_kernel_usable
    from speedrun.optim.muon import NS_COEFFICIENTS, newton_schulz, polar_express
    torch.manual_seed(0)
    out = dict(usable=symmetric_kernel_usable(torch.zeros(2, 2)), kernel={}, fused={}, ns={})
    B, K, W, S = 32, 32, 4, 1
    # (shape, config): sizes not multiples of the 32 / 16 tiles, a batch > 1, leading dims, a transposed view
    cases = [((2, 70, 100), (32, 32, 4, 1)), ((3, 33, 17), (16, 16, 4, 1)), ((50, 40), (32, 16, 4, 1)),
             ((2, 2, 40, 24), (16, 32, 4, 1)), ((2, 96, 64), None)]
    for shape, cfg in cases:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(shape).to(dtype)
            if cfg is None:
                x = x.mT  # strided: rows of X are columns in memory (newton_schulz's tall case)
            c = sym(x, config=cfg)
            r = ref(x)
            out["kernel"][f"{list(x.shape)}/{cfg}/{dtype}"] = dict(
                shape=list(c.shape), dtype=str(c.dtype), symmetric=torch.equal(c, c.mT),
                err=((c.float() - r.float()).abs().max() / r.float().abs().max()).item())
            # the B step on A = X X^T of a normalised X, as in Newton-Schulz
            a, b, cc = NS_COEFFICIENTS
            xn = x / x.float().norm(dim=(-2, -1), keepdim=True).to(dtype)
            A = sym(xn, config=cfg)
            Bk = sym(A, alpha=cc, beta=b, addend=A, config=cfg)
            Ad = A.double()
            want = b * Ad + cc * Ad @ Ad
            out["fused"][f"{list(x.shape)}/{cfg}/{dtype}"] = dict(
                symmetric=torch.equal(Bk, Bk.mT), err=((Bk.double() - want).abs().max() / want.abs().max()).item())
    for shape in [(2, 64, 96), (2, 96, 64), (45, 70)]:
        G = torch.randn(shape)
        for dtype in (torch.float32, torch.bfloat16):
            for name, f in [("ns", newton_schulz), ("pe", lambda G, dtype, **k: polar_express(G, dtype=dtype, **k))]:
                with_k = f(G, dtype=dtype, symmetric_kernel=True).double()
                without = f(G, dtype=dtype).double()
                exact = f(G, dtype=torch.float64)
                rel = lambda a, b: ((a - b).norm() / b.norm()).item()
                out["ns"][f"{name}/{list(shape)}/{dtype}"] = dict(
                    shape=list(with_k.shape), err=rel(with_k, without), kernel_err=rel(with_k, exact),
                    torch_err=rel(without, exact))
    # compiled: the kernel is one opaque custom op, no graph break (fullgraph); aot_eager keeps it quick
    G = torch.randn(2, 64, 96)
    compiled = torch.compile(lambda G: newton_schulz(G, dtype=torch.bfloat16, symmetric_kernel=True),
                             backend="aot_eager", fullgraph=True, dynamic=False)
    eager = newton_schulz(G, dtype=torch.bfloat16, symmetric_kernel=True)
    out["compiled_equal"] = torch.equal(compiled(G), eager)
    print(json.dumps(out))
""")


def test_triton_kernel_matches_reference_in_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")  # read when the kernel is defined: a fresh process
    done = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["usable"]
    assert len(results["kernel"]) == 10 and len(results["fused"]) == 10 and len(results["ns"]) == 12
    for case, r in results["kernel"].items():
        *lead, m, _ = eval(case.split("/")[0])
        assert r["shape"] == [*lead, m, m] and r["dtype"] in case, (case, r)
        assert r["symmetric"], case
        # float32: accumulation order only; bfloat16: both round the float32 sum, at most one bf16 step apart
        assert r["err"] < (1e-5 if "float32" in case else 2**-8), (case, r)
    for case, r in results["fused"].items():
        assert r["symmetric"], case
        assert r["err"] < (1e-5 if "float32" in case else 2**-7), (case, r)
    for case, r in results["ns"].items():
        assert r["shape"] == eval(case.split("/")[1]), case
        if "float32" in case:
            assert r["err"] < 1e-4, (case, r)
        else:
            # bf16 Newton-Schulz is ~4% off float64 either way, by independent rounding: the two paths differ by
            # about as much. The kernel rounds B once (torch rounds A A, c A A and b A apart): no less accurate.
            assert r["err"] < 0.08 and r["kernel_err"] < 0.06, (case, r)
            assert r["kernel_err"] < 1.1 * r["torch_err"], (case, r)
    assert results["compiled_equal"]
