"""Muon: quintic Newton-Schulz orthogonalisation and the single-rank optimiser step."""

from __future__ import annotations

import pytest
import torch

from speedrun.optim.muon import NS_COEFFICIENTS, Muon, newton_schulz, shape_scale

A, B, C = NS_COEFFICIENTS
# Measured here (random Gaussian matrices, shapes below, float32 and bfloat16): singular values of the NS output
# lie in [0.671, 1.204] for rectangular matrices; the scalar map p^5 on normalised singular values >= 0.0015
# gives [0.680, 1.2024]. Square Gaussian matrices can have singular values so small (relative to the Frobenius
# norm) that five steps cannot lift them: those are tested through the scalar map instead.
BAND = (0.6, 1.25)
SHAPES = [(64, 32), (32, 64), (48, 200), (200, 48), (96, 48), (128, 128)]


def gaussian(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def scalar_map(x: torch.Tensor, steps: int = 5) -> torch.Tensor:
    for _ in range(steps):
        x = A * x + B * x**3 + C * x**5
    return x


def test_coefficients_are_record21():
    assert NS_COEFFICIENTS == (3.4445, -4.7750, 2.0315)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_singular_values_in_band_and_vectors_kept(shape, dtype):
    G = gaussian(shape, seed=sum(shape))
    X = newton_schulz(G, dtype=dtype)
    assert X.shape == G.shape and X.dtype == dtype
    X = X.double()
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    rel = (S / G.double().norm()).min()
    # singular directions of G, with the NS output written in them: ~diagonal, diagonal in the band
    M = U.T @ X @ Vh.T
    d = torch.diagonal(M)
    off = (M - torch.diag(d)).norm() / d.norm()
    assert off < (1e-4 if dtype == torch.float32 else 0.06), f"singular vectors not kept: off-diagonal {off:.4f}"
    O = U @ Vh  # the exact orthogonalisation U V^T
    assert (X - O).norm() / O.norm() < 0.35
    s_out = torch.linalg.svdvals(X)
    assert s_out.max() <= BAND[1]
    if rel >= 0.0015:  # every singular value can be lifted into the band in 5 steps
        assert s_out.min() >= BAND[0], f"singular values {s_out.min():.3f}..{s_out.max():.3f}"
        assert d.min() >= BAND[0] and d.max() <= BAND[1]
    else:  # only the ones that are large enough; tiny ones stay tiny but never overshoot
        big = S / G.double().norm() >= 0.0015
        assert d[big].min() >= BAND[0]


@pytest.mark.parametrize("shape", [(64, 32), (32, 96), (128, 128)])
def test_newton_schulz_acts_on_singular_values_as_the_scalar_quintic(shape):
    """In float64 the iteration is exactly X = U p^5(S/||G||_F) V^T (p(x) = a x + b x^3 + c x^5)."""
    G = gaussian(shape, seed=7).double()
    X = newton_schulz(G, dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    want = U @ torch.diag(scalar_map(S / (G.norm() + 1e-7))) @ Vh
    torch.testing.assert_close(X, want, atol=1e-10, rtol=1e-8)


def test_scalar_map_band():
    x = torch.logspace(torch.log10(torch.tensor(0.0015)), 0, 100_001, dtype=torch.float64)
    y = scalar_map(x)
    assert 0.67 < y.min() < 0.69 and 1.19 < y.max() < 1.21


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_batched_3d_is_slice_by_slice(dtype):
    G = gaussian((3, 48, 80), seed=3) * torch.tensor([1.0, 10.0, 0.01])[:, None, None]  # each slice its own norm
    X = newton_schulz(G, dtype=dtype)
    per_slice = torch.stack([newton_schulz(G[i], dtype=dtype) for i in range(3)])
    if dtype == torch.float32:
        torch.testing.assert_close(X, per_slice, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(X.float(), per_slice.float(), atol=2e-2, rtol=2e-2)
    for i in range(3):
        s = torch.linalg.svdvals(X[i].float())
        assert BAND[0] <= s.min() and s.max() <= BAND[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_tall_is_transpose_of_wide(dtype):
    G = gaussian((120, 40), seed=4)
    torch.testing.assert_close(newton_schulz(G, dtype=dtype), newton_schulz(G.T, dtype=dtype).T, atol=0, rtol=0)
    G3 = gaussian((2, 90, 30), seed=5)
    torch.testing.assert_close(newton_schulz(G3, dtype=dtype), newton_schulz(G3.mT, dtype=dtype).mT, atol=0, rtol=0)


def test_newton_schulz_scale_invariant_and_rejects_vectors():
    G = gaussian((32, 64), seed=6)
    torch.testing.assert_close(newton_schulz(G * 1000, dtype=torch.float32), newton_schulz(G, dtype=torch.float32),
                               atol=1e-5, rtol=1e-5)
    assert torch.equal(newton_schulz(torch.zeros(8, 16), dtype=torch.float32), torch.zeros(8, 16))
    with pytest.raises(ValueError):
        newton_schulz(torch.ones(5))


def test_shape_scale():
    assert shape_scale(torch.empty(3072, 768)) == 2.0
    assert shape_scale(torch.empty(768, 3072)) == 1.0
    assert shape_scale(torch.empty(768, 768)) == 1.0
    assert shape_scale(torch.empty(3, 768, 768)) == 1.0
    assert shape_scale(torch.empty(200, 50)) == 2.0


# --- the optimiser step ----------------------------------------------------------------------------------------------
def nesterov_expected(p0, grads, lr, mu, ns_dtype):
    """p after len(grads) steps, by the spec's formulas."""
    p = p0.clone()
    buf = torch.zeros_like(p0)
    for g in grads:
        buf = torch.lerp(buf, g, 1 - mu)
        g2 = torch.lerp(g, buf, mu)
        scale = max(1.0, p.shape[-2] / p.shape[-1]) ** 0.5
        p = p - lr * scale * newton_schulz(g2, dtype=ns_dtype).to(p.dtype)
    return p


@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (3, 16, 24)])
def test_muon_two_steps_match_hand_computation(shape):
    lr, mu = 0.05, 0.9
    p0 = gaussian(shape, seed=10)
    grads = [gaussian(shape, seed=11), gaussian(shape, seed=12)]
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=mu, ns_dtype=torch.float32)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    want = nesterov_expected(p0, grads, lr, mu, torch.float32)
    torch.testing.assert_close(p.detach(), want, atol=1e-5, rtol=1e-5)
    # the momentum buffer is lerp(lerp(0, g1, 1-mu), g2, 1-mu)
    buf = torch.lerp(torch.lerp(torch.zeros_like(p0), grads[0], 1 - mu), grads[1], 1 - mu)
    torch.testing.assert_close(opt.state[p]["momentum_buffer"], buf, atol=1e-6, rtol=1e-6)
    # momentum matters: ignoring it (plain NS of each grad) gives a different second step
    no_mom = p0 - lr * shape_scale(p0) * (newton_schulz(grads[0], dtype=torch.float32)
                                          + newton_schulz(grads[1], dtype=torch.float32))
    assert (p.detach() - no_mom).abs().max() > 1e-3


def test_muon_default_bf16_step_and_tall_scale():
    lr = 0.02
    p0 = gaussian((128, 32), seed=20)
    g = gaussian((128, 32), seed=21)
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=0.95)  # defaults: nesterov, bf16 Newton-Schulz
    p.grad = g.clone()
    opt.step()
    want = nesterov_expected(p0, [g], lr, 0.95, torch.bfloat16)
    torch.testing.assert_close(p.detach(), want, atol=1e-6, rtol=1e-6)
    step = (p.detach() - p0)
    # tall (128 x 32): scale 2, so the update's singular values are ~2 * lr * [0.68, 1.2]
    s = torch.linalg.svdvals(step)
    assert 2 * lr * BAND[0] <= s.min() and s.max() <= 2 * lr * BAND[1]


def test_muon_without_nesterov_uses_the_buffer():
    lr, mu = 0.1, 0.8
    p0, g1, g2 = gaussian((16, 24), 30), gaussian((16, 24), 31), gaussian((16, 24), 32)
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=mu, nesterov=False, ns_dtype=torch.float32)
    for g in (g1, g2):
        p.grad = g.clone()
        opt.step()
    b1 = (1 - mu) * g1
    b2 = torch.lerp(b1, g2, 1 - mu)
    want = p0 - lr * newton_schulz(b1, dtype=torch.float32) - lr * newton_schulz(b2, dtype=torch.float32)
    torch.testing.assert_close(p.detach(), want, atol=1e-5, rtol=1e-5)


def test_muon_groups_parameters_by_matrix_shape():
    """One group per matrix shape up to transposition (a 3-D parameter counts by its slices), largest first."""
    shapes = [(8, 8), (4, 16), (16, 16), (2, 32), (3, 16, 16), (16, 4)]
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    opt = Muon(params, lr=0.05)
    groups = [[tuple(p.shape) for p in g["params"]] for g in opt.param_groups]
    assert groups[0] == [(16, 16), (3, 16, 16)]
    assert sorted(map(sorted, groups[1:])) == sorted([[(8, 8)], [(4, 16), (16, 4)], [(2, 32)]])
    for g in opt.param_groups:
        assert len({tuple(sorted(p.shape[-2:])) for p in g["params"]}) == 1
    areas = [g["params"][0].shape[-2] * g["params"][0].shape[-1] for g in opt.param_groups]
    assert areas == sorted(areas, reverse=True)
    assert sorted(id(p) for g in opt.param_groups for p in g["params"]) == sorted(id(p) for p in params)
    assert all(g["lr"] == 0.05 and g["momentum"] == 0.95 and g["nesterov"] for g in opt.param_groups)


def test_muon_rejects_vectors():
    with pytest.raises(ValueError):
        Muon([torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(4))])


def test_muon_batched_mixed_shapes_match_per_parameter_hand_computation():
    """Tall and wide matrices of one shape and 3-D stacks share a batch; each still gets its own update."""
    lr, mu = 0.05, 0.85
    shapes = [(32, 48), (48, 32), (3, 32, 48), (2, 48, 32), (16, 16), (3, 16, 16), (20, 40)]
    p0 = [gaussian(s, seed=40 + i) for i, s in enumerate(shapes)]
    grads = [[gaussian(s, seed=60 + 10 * k + i) for i, s in enumerate(shapes)] for k in range(2)]
    params = [torch.nn.Parameter(p.clone()) for p in p0]
    opt = Muon(params, lr=lr, momentum=mu, ns_dtype=torch.float32)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    for i, (p, s) in enumerate(zip(params, shapes)):
        gs = [grads[0][i], grads[1][i]]
        if len(s) == 3:  # slice by slice
            want = torch.stack([nesterov_expected(p0[i][j], [g[j] for g in gs], lr, mu, torch.float32)
                                for j in range(s[0])])
            scale = max(1.0, s[1] / s[2]) ** 0.5
            want_whole = nesterov_expected(p0[i], gs, lr, mu, torch.float32)  # NS is slice-wise on 3-D too
            torch.testing.assert_close(want, want_whole, atol=1e-5, rtol=1e-5)
            assert shape_scale(p) == scale
        else:
            want = nesterov_expected(p0[i], gs, lr, mu, torch.float32)
        torch.testing.assert_close(p.detach(), want, atol=2e-5, rtol=1e-5, msg=f"parameter of shape {s}")


def test_muon_skips_parameters_without_grad():
    a, b = torch.nn.Parameter(torch.ones(8, 8)), torch.nn.Parameter(torch.ones(8, 8))
    opt = Muon([a, b], lr=0.1, ns_dtype=torch.float32)
    a.grad = gaussian((8, 8), 1)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(8, 8))
    assert not torch.equal(a.detach(), torch.ones(8, 8))
    assert b not in opt.state or not opt.state[b]


def test_muon_step_on_a_model_group_changes_every_matrix():
    """Built on GPT's muon group (incl. the 3-D qkv weight): each matrix moves by -lr * scale * NS(nesterov(g)),
    the qkv weight slice by slice."""
    from speedrun.model.gpt import GPT
    from speedrun.recipe import load_recipe

    torch.manual_seed(0)
    r = load_recipe("tiny", dict(model_dim=32, head_dim=16, num_heads=2, mlp_hidden=64, seq_len=256,
                                 val_seq_len=256, window_ramp_tokens=256, batch_tokens=256))
    model = GPT(r)
    muon_params = model.param_groups()["muon"]
    assert any(p.ndim == 3 for p in muon_params)
    before = [p.detach().clone() for p in muon_params]
    grads = [torch.randn_like(p) for p in muon_params]
    opt = Muon(muon_params, lr=0.05, momentum=0.9, ns_dtype=torch.float32)
    for p, g in zip(muon_params, grads):
        p.grad = g.clone()
    opt.step()
    for p, b, g in zip(muon_params, before, grads):
        g2 = torch.lerp(g, (1 - 0.9) * g, 0.9)
        if p.ndim == 3:
            upd = torch.stack([newton_schulz(g2[i], dtype=torch.float32) for i in range(p.shape[0])])
        else:
            upd = newton_schulz(g2, dtype=torch.float32)
        torch.testing.assert_close(p.detach(), b - 0.05 * shape_scale(p) * upd, atol=1e-6, rtol=1e-5)
        assert (p.detach() - b).abs().max() > 1e-3


# --- Polar Express, NorMuon, cautious weight decay --------------------------------------------------------------------
from speedrun.optim.muon import POLAR_EXPRESS_COEFFICIENTS, POLAR_EXPRESS_NORM_MARGIN, normuon_scale, polar_express  # noqa: E402

# Measured here: the Polar Express scalar map on singular values in [1e-3, 1] (after the 1.02 margin) lands in
# [0.847, 1.142]; random rectangular matrices in float32 and bfloat16 give [0.855, 1.143].
PE_BAND = (0.84, 1.15)


def pe_scalar_map(x: torch.Tensor) -> torch.Tensor:
    for a, b, c in POLAR_EXPRESS_COEFFICIENTS:
        x = a * x + b * x**3 + c * x**5
    return x


def test_polar_express_scalar_map_is_tighter_than_the_quintic():
    x = torch.logspace(-3, 0, 100_001, dtype=torch.float64)
    y = pe_scalar_map(x / POLAR_EXPRESS_NORM_MARGIN)
    assert PE_BAND[0] <= y.min() and y.max() <= PE_BAND[1]
    quintic = scalar_map(x)
    assert (y - 1).abs().max() < 0.5 * (quintic - 1).abs().max()  # the quintic reaches 0.47 at 1e-3


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (48, 200), (200, 48), (96, 48)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_polar_express_singular_values_in_its_band(shape, dtype):
    G = gaussian(shape, seed=sum(shape) + 1)
    X = polar_express(G, dtype=dtype)
    assert X.shape == G.shape and X.dtype == dtype
    s = torch.linalg.svdvals(X.double())
    assert PE_BAND[0] <= s.min() and s.max() <= PE_BAND[1], f"{s.min():.3f}..{s.max():.3f}"


def test_polar_express_acts_on_singular_values_as_its_scalar_map():
    G = gaussian((48, 80), seed=3).double()
    X = polar_express(G, dtype=torch.float64)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    want = U @ torch.diag(pe_scalar_map(S / (POLAR_EXPRESS_NORM_MARGIN * G.norm() + 1e-7))) @ Vh
    torch.testing.assert_close(X, want, atol=1e-10, rtol=1e-8)


def test_newton_schulz_per_iteration_coefficients():
    G = gaussian((24, 40), seed=4)
    same = newton_schulz(G, 3, [NS_COEFFICIENTS] * 3, torch.float32)
    torch.testing.assert_close(same, newton_schulz(G, 3, NS_COEFFICIENTS, torch.float32))
    with pytest.raises(ValueError):
        newton_schulz(G, 4, [NS_COEFFICIENTS] * 3, torch.float32)


@pytest.mark.parametrize("per_row", [False, True])
def test_normuon_scale_equalises_neurons_and_keeps_the_norm(per_row):
    """From a zero buffer, one step divides each neuron (column, or row for square matrices) by the root of its
    mean square: all neurons end with equal norms, and each matrix keeps its Frobenius norm."""
    U = gaussian((3, 16, 16 if per_row else 40), seed=5) * torch.linspace(0.1, 3, 16 if per_row else 40)[
        (slice(None), None) if per_row else (None, slice(None))]
    buf = torch.zeros((3, 16, 1) if per_row else (3, 1, 40))
    out = normuon_scale(U, buf, 0.95, per_row)
    dim = -1 if per_row else -2
    torch.testing.assert_close(buf, 0.05 * U.square().mean(dim=dim, keepdim=True))
    torch.testing.assert_close(out.norm(dim=(-2, -1)), U.norm(dim=(-2, -1)))
    neuron_norms = out.norm(dim=dim)
    torch.testing.assert_close(neuron_norms, neuron_norms[..., :1].expand_as(neuron_norms))
    assert U.norm(dim=dim).std() > 0.5  # the input's neurons were far from equal
    # a second step uses the running average, not just the new update
    out2 = normuon_scale(U * 2, buf, 0.95, per_row)
    torch.testing.assert_close(buf, 0.95 * 0.05 * U.square().mean(dim=dim, keepdim=True)
                               + 0.05 * (2 * U).square().mean(dim=dim, keepdim=True))
    torch.testing.assert_close(out2.norm(dim=(-2, -1)), 2 * U.norm(dim=(-2, -1)))


def test_muon_with_normuon_and_polar_express_matches_hand_computation():
    lr, mu, beta2 = 0.05, 0.9, 0.95
    shape = (32, 96)  # wide: statistics per column
    p0, grads = gaussian(shape, 40), [gaussian(shape, 41), gaussian(shape, 42)]
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=mu, ns_dtype=torch.float32, orthogonalizer="polar_express", normuon_beta2=beta2)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    want, buf, v = p0.clone(), torch.zeros(shape), torch.zeros(1, 96)
    for g in grads:
        buf = torch.lerp(buf, g, 1 - mu)
        u = polar_express(torch.lerp(g, buf, mu), dtype=torch.float32)
        v = beta2 * v + (1 - beta2) * u.square().mean(dim=0, keepdim=True)
        scaled = u / v.sqrt()
        want = want - lr * scaled * (u.norm() / scaled.norm())
    torch.testing.assert_close(p.detach(), want, atol=1e-5, rtol=1e-5)


def test_muon_rejects_unknown_orthogonalizer():
    with pytest.raises(ValueError, match="orthogonalizer"):
        Muon([torch.nn.Parameter(torch.zeros(3, 4))], orthogonalizer="svd")


def test_compiled_muon_step_matches_eager_and_compiles_once():
    """compile_ns (how training runs Muon): the momentum pass, Newton-Schulz and the update pass compiled give the
    eager step's parameters and state, over steps whose lr and momentum change (as the schedules change them)
    without compiling again. One group (a tall, a wide and a 3-D stack) keeps the CPU compile short."""
    from torch._dynamo.utils import counters

    shapes = [(48, 24), (24, 48), (2, 48, 24)]

    def run(compile_ns):
        params = [torch.nn.Parameter(gaussian(s, seed=70 + i)) for i, s in enumerate(shapes)]
        opt = Muon(params, lr=0.05, momentum=0.9, ns_dtype=torch.float32, compile_ns=compile_ns,
                   orthogonalizer="polar_express", normuon_beta2=0.95)
        graphs = []
        for k in range(3):
            for i, p in enumerate(params):
                p.grad = gaussian(p.shape, seed=100 + 10 * k + i)
            opt.param_groups[0].update(lr=0.05 * (1 - 0.2 * k), momentum=0.85 + 0.04 * k)
            opt.step()
            graphs.append(counters["stats"]["unique_graphs"])
        return params, opt, graphs

    torch._dynamo.reset()
    counters.clear()
    eager, eager_opt, _ = run(False)
    compiled, compiled_opt, graphs = run(True)
    assert graphs[0] > 0 and graphs[1] == graphs[2] == graphs[0], f"graphs compiled after each step: {graphs}"
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b.detach(), a.detach(), atol=2e-6, rtol=1e-5)
        torch.testing.assert_close(compiled_opt.state[b]["momentum_buffer"], eager_opt.state[a]["momentum_buffer"])
    torch.testing.assert_close(compiled_opt.state[compiled[0]]["normuon_second_moment"],
                               eager_opt.state[eager[0]]["normuon_second_moment"])
    assert (compiled[0].detach() - gaussian(shapes[0], seed=70)).abs().max() > 1e-3


def test_passes_compiled_apart_give_the_one_rank_graph_step():
    """Several ranks compile the three passes apart (the all-gather sits between Newton-Schulz and the update), one
    rank as one graph a group: the same step. Here the passes run apart on one process, as a rank runs them."""
    shapes = [(48, 24), (24, 48), (2, 48, 24)]
    params = [torch.nn.Parameter(gaussian(s, seed=90 + i)) for i, s in enumerate(shapes)]
    apart = [p.detach().clone() for p in params]
    grads = [gaussian(s, seed=95 + i) for i, s in enumerate(shapes)]
    opt = Muon(params, lr=0.04, momentum=0.9, ns_dtype=torch.float32, compile_ns=True,
               orthogonalizer="polar_express", normuon_beta2=0.95)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    group = opt.param_groups[0]
    bufs = [torch.zeros_like(g) for g in grads]
    second_moment = torch.zeros(4, 1, 48)  # four wide (24, 48) matrices, not square: one statistic a column
    X = opt._directions(grads, bufs, torch.tensor(0.9), torch.tensor(0.1), True, torch.float32)
    U = opt._ns(X, group["ns_steps"], group["ns_coefficients"], torch.float32)
    opt._apply(apart, U, torch.tensor(0.04), second_moment, 0.95)
    for p, a in zip(params, apart):
        torch.testing.assert_close(a, p.detach(), atol=2e-6, rtol=1e-5)
    for p, buf in zip(params, bufs):
        torch.testing.assert_close(buf, opt.state[p]["momentum_buffer"])
    torch.testing.assert_close(second_moment, opt.state[params[0]]["normuon_second_moment"])
    assert (apart[0] - gaussian(shapes[0], seed=90)).abs().max() > 1e-3


def test_muon_leaves_the_gradients_as_they_were():
    """The Nesterov direction is computed out of place: p.grad after a step is the gradient the step was given."""
    p = torch.nn.Parameter(gaussian((16, 24), 80))
    opt = Muon([p], lr=0.05, ns_dtype=torch.float32)
    g = gaussian((16, 24), 81)
    p.grad = g.clone()
    opt.step()
    assert torch.equal(p.grad, g)


def test_newton_schulz_keeps_leading_dimensions():
    G = gaussian((2, 3, 20, 12), seed=6)
    X = newton_schulz(G, dtype=torch.float32)
    assert X.shape == G.shape
    torch.testing.assert_close(X[1, 2], newton_schulz(G[1, 2], dtype=torch.float32), atol=1e-6, rtol=1e-5)
