"""Part 40, call E: Muon's compile in a fresh launch and its warm step, for whichever `speedrun` is installed.

Muon is built as `fast_1gpu`'s trainer builds it (`build_optimizers(..., compile_ns=True)`) over the recipe's own
block matrices (on the GPU, random gradients). The first `step()` compiles its graphs; the script times that step,
counts TorchDynamo's frames, then times 50 warm steps with CUDA events (the median). Run each build in a process of
its own with empty TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR, so each first step compiles from nothing. Without a
GPU it runs on the CPU (float32 Newton-Schulz, wall-clock timing), only to check the script itself.
    python muon_compile.py LABEL   ->   one JSON line
"""

import json
import statistics
import sys
import time

import torch
from torch._dynamo.utils import counters

import speedrun

from speedrun.build import build_model, build_optimizers
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

r = load_recipe("fast_1gpu")
plan = make_plan(r, None if torch.cuda.is_available() else "cpu")
model = build_model(r, plan)
_, muon = build_optimizers(model, r, compile_ns=True)
params = [p for g in muon.param_groups for p in g["params"]]
dev = plan.device
gen = torch.Generator(device=dev).manual_seed(0)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def step():
    for p in params:
        p.grad = torch.randn(p.shape, device=dev, dtype=p.dtype, generator=gen)
    muon.step()


sync()
t = time.perf_counter()
step()
sync()
first_s = time.perf_counter() - t
graphs = counters["stats"]["unique_graphs"]
for _ in range(10 if dev.type == "cuda" else 1):
    step()
times = []
for _ in range(50 if dev.type == "cuda" else 3):
    for p in params:  # gradients made outside the timed region
        p.grad = torch.randn(p.shape, device=dev, dtype=p.dtype, generator=gen)
    if dev.type == "cuda":
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        muon.step()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    else:
        t = time.perf_counter()
        muon.step()
        times.append(1e3 * (time.perf_counter() - t))
shapes = sorted({tuple(p.shape) for p in params})
print(json.dumps(dict(label=sys.argv[1], first_step_s=round(first_s, 2), graphs=graphs,
                      warm_step_ms=round(statistics.median(times), 4), groups=len(muon.param_groups),
                      shapes=shapes, dynamo_frames_after_warm=counters["stats"]["unique_graphs"], src=speedrun.__file__)))
