"""The trainer's side process on the GPU: `fast_1gpu`'s Muon graphs compiled there are the ones its first step uses."""

import pytest
import torch
from torch._dynamo.utils import counters

from speedrun.build import build_optimizers
from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe
from speedrun.side_compile import start_side_compile

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_fast_1gpu_muon_graphs_come_from_the_side_process(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # empty: only the side process writes there
    torch._dynamo.reset()
    torch.manual_seed(0)
    r = load_recipe("fast_1gpu")
    model = GPT(r).cuda()
    _, muon = build_optimizers(model, r, compile_ns=True)
    side = start_side_compile(muon)
    assert side is not None
    said = side.finish(wait_s=300)
    print(f"\n{said}")
    assert said.startswith("Muon's graphs in a side process: compiled in"), said
    for p in (p for g in muon.param_groups for p in g["params"]):
        p.grad = torch.randn_like(p) * 1e-3
    counters.clear()
    muon.step()
    torch.cuda.synchronize()
    assert counters["inductor"]["fxgraph_cache_miss"] == 0, dict(counters["inductor"])
    assert counters["inductor"]["fxgraph_cache_hit"] == 4, dict(counters["inductor"])
