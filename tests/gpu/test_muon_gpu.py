"""GPU checks of Muon as training runs it: Newton-Schulz's sums in cuBLAS's baddbmm epilogues against the products
written out, in bf16 and against float64; the compiled step (momentum pass, Newton-Schulz, update pass) against the
eager one on the `fast` recipe's block matrices."""

import pytest
import torch
from test_gpu import rel_err

from speedrun.build import build_model, build_optimizers
from speedrun.optim.muon import POLAR_EXPRESS_COEFFICIENTS, POLAR_EXPRESS_NORM_MARGIN, polar_express
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
    assert err_fused < 1.5 * err_apart + 1e-3  # no less accurate than the products apart
    assert rel_err(fused, apart) < 2e-2


def test_compiled_muon_step_matches_eager_on_the_fast_recipe():
    r = load_recipe("fast_1gpu")
    plan = make_plan(r)
    steps = []
    for compile_ns in (False, True):
        model = build_model(r, plan)
        _, muon = build_optimizers(model, r, compile_ns=compile_ns)
        params = [p for group in muon.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        g = torch.Generator(device="cuda").manual_seed(1)
        for k in range(2):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, device="cuda") * 1e-3
            for group in muon.param_groups:
                group.update(lr=r.muon_lr * (1 - 0.1 * k), momentum=0.85 + 0.05 * k)
            muon.step()
        steps.append([p.detach() - b for p, b in zip(params, before)])
    worst = max(rel_err(c, e) for e, c in zip(*steps))
    print(f"\ncompiled against eager Muon, two steps on {len(steps[0])} matrices: worst relative error {worst:.2e}")
    assert all(e.abs().max() > 0 for e in steps[0])
    assert worst < 1e-2
