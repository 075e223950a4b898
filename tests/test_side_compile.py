"""Muon's graphs compiled in a side process: same graphs as the trainer's (cache hits), harmless when it fails."""

import torch
from torch._dynamo.utils import counters

from speedrun.optim.muon import Muon
from speedrun.side_compile import SideCompile, compile_from_spec, muon_spec, start_side_compile


def _muon(compile_ns: bool) -> Muon:
    torch.manual_seed(0)
    # two groups, as the model's: 3-D slices (wide (8, 16) after transposing) and a wide (8, 32) matrix
    params = [torch.nn.Parameter(torch.randn(2, 16, 8)), torch.nn.Parameter(torch.randn(8, 32)),
              torch.nn.Parameter(torch.randn(32, 8))]
    return Muon(params, lr=0.02, ns_dtype=torch.float32, compile_ns=compile_ns, orthogonalizer="polar_express",
                normuon_beta2=0.95)


def _step(muon: Muon) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    for group in muon.param_groups:
        for p in group["params"]:
            p.grad = torch.randn(p.shape, generator=g)
    muon.step()
    return [p.detach().clone() for group in muon.param_groups for p in group["params"]]


def test_the_spec_rebuilds_the_same_optimiser():
    muon = _muon(compile_ns=False)
    twin = compile_from_spec(muon_spec(muon))
    assert twin.settings == muon.settings
    shapes = lambda m: [[tuple(p.shape) for p in g["params"]] for g in m.param_groups]
    assert shapes(twin) == shapes(muon)
    compiled_args = lambda m: [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in m.param_groups]
    assert compiled_args(twin) == compiled_args(muon)  # lr only scales the update, outside the compiled graphs


def test_warm_compile_changes_no_state_and_no_parameter():
    muon = _muon(compile_ns=False)
    before = [p.detach().clone() for g in muon.param_groups for p in g["params"]]
    muon.warm_compile()
    assert not muon.state
    assert all(torch.equal(a, p) for a, p in zip(before, (p for g in muon.param_groups for p in g["params"])))
    assert all(p.grad is None for g in muon.param_groups for p in g["params"])


def test_muons_first_step_takes_the_side_process_graphs_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # empty: only the side process writes there
    torch._dynamo.reset()
    muon = _muon(compile_ns=True)
    said = SideCompile(muon_spec(muon)).finish(wait_s=300)
    assert said.startswith("Muon's graphs in a side process: compiled in"), said
    counters.clear()
    helped = _step(muon)
    # its four graphs (two shapes x Newton-Schulz, NorMuon) all from the cache; compiled alone, the step misses four
    assert counters["inductor"]["fxgraph_cache_miss"] == 0, dict(counters["inductor"])
    assert counters["inductor"]["fxgraph_cache_hit"] == 4, dict(counters["inductor"])
    eager = _step(_muon(compile_ns=False))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(helped, eager))


def test_a_failing_side_process_is_reported_in_one_line():
    spec = muon_spec(_muon(compile_ns=False))
    spec["settings"]["orthogonalizer"] = "nonsense"
    said = SideCompile(spec).finish(wait_s=120)
    assert said.startswith("Muon's graphs in a side process: failed (exit 1: ValueError: orthogonalizer 'nonsense'")
    assert "\n" not in said


def test_no_side_process_without_compiled_newton_schulz_on_a_gpu():
    assert start_side_compile(_muon(compile_ns=False)) is None
    assert start_side_compile(_muon(compile_ns=True)) is None  # on the CPU: compiled in its first step, as before
