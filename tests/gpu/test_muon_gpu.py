"""GPU checks of Muon as training runs it: Newton-Schulz's sums in cuBLAS's baddbmm epilogues against the products
written out, in bf16 and against float64; the compiled step (momentum pass, Newton-Schulz, update pass) against the
eager one on the `fast` recipe's block matrices, each against float64."""

import pytest
import torch
from test_gpu import rel_err

from speedrun.build import build_model, build_optimizers
from speedrun.optim.muon import POLAR_EXPRESS_COEFFICIENTS, POLAR_EXPRESS_NORM_MARGIN, Muon, polar_express
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def polar_express_products_apart(G: torch.Tensor, dtype) -> torch.Tensor:
    """Each product written out and summed after (the form before the baddbmm epilogues), wide matrices only."""
    X = G.to(dtype)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * POLAR_EXPRESS_NORM_MARGIN + 1e-7)
    for a, b, c in POLAR_EXPRESS_COEFFICIENTS:
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X


@pytest.mark.parametrize("shape", [(22, 768, 3072), (40, 768, 768)])
def test_polar_express_bf16_epilogues_match_products_apart(shape):
    g = torch.Generator(device="cuda").manual_seed(0)
    G = torch.randn(shape, generator=g, device="cuda")
    fused = polar_express(G, dtype=torch.bfloat16)
    apart = polar_express_products_apart(G, torch.bfloat16)
    exact = polar_express_products_apart(G.double(), torch.float64)
    err_fused, err_apart = rel_err(fused, exact), rel_err(apart, exact)
    print(f"\n{shape}: bf16 with epilogues {err_fused:.2e}, products apart {err_apart:.2e} (relative to float64)")
    assert fused.dtype == torch.bfloat16 and fused.shape == G.shape
    # no less accurate than the products apart. (The two bf16 results differ from each other by more than either
    # differs from float64: 2.4e-2 between them, 1.1e-2 and 2.3e-2 from float64 on an H100, part 51 call A.)
    assert err_fused < 1.5 * err_apart + 1e-3
    assert err_fused < 2e-2


def test_compiled_muon_step_as_accurate_as_eager_on_the_fast_recipe():
    """Two steps on the recipe's block matrices: the compiled bf16 step (as training runs it) and the eager bf16 step,
    each against the same steps with Polar Express in float64. Two bf16 runs differ from each other by about their
    distance from float64 (1.5e-2 on an H100 in part 51's call A): compared with each other they prove little."""
    r = load_recipe("fast_1gpu")
    plan = make_plan(r)
    updates = {}
    for name in ("eager", "compiled", "float64"):
        model = build_model(r, plan)
        if name == "float64":
            params = model.param_groups()["muon"]
            muon = Muon(params, ns_dtype=torch.float64, orthogonalizer=r.orthogonalizer, normuon_beta2=r.normuon_beta2)
        else:
            _, muon = build_optimizers(model, r, compile_ns=name == "compiled")
        params = [p for group in muon.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        g = torch.Generator(device="cuda").manual_seed(1)
        for k in range(2):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, device="cuda") * 1e-3
            for group in muon.param_groups:
                group.update(lr=r.muon_lr * (1 - 0.1 * k), momentum=0.85 + 0.05 * k)
            muon.step()
        updates[name] = [p.detach() - b for p, b in zip(params, before)]
    exact = updates["float64"]
    worst = {name: max(rel_err(u, e) for u, e in zip(updates[name], exact)) for name in ("eager", "compiled")}
    print(f"\ntwo Muon steps on {len(exact)} matrices, worst relative error against float64 Polar Express: "
          f"eager {worst['eager']:.2e}, compiled {worst['compiled']:.2e}")
    assert all(u.abs().max() > 0 for u in exact)
    assert worst["compiled"] < 1.5 * worst["eager"] + 1e-3 and worst["compiled"] < 3e-2
