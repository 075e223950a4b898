"""Part 37's CPU probe: compile a small sampled-head model's sampled and full-softmax steps (with backward) with
Inductor on the CPU, and print Inductor's FX graph cache and AOTAutograd cache counters, the graph breaks and
TorchDynamo's compile times. Run from a checkout (its speedrun and tests on sys.path), on empty compile folders:

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python cpu_split_probe.py

With torch._inductor.codecache's logger at DEBUG it also prints each graph's cache-key details (how part 37 compared
the graph break of main with the split compile: cpu_split_probe.txt)."""

import os
import sys
import time
from types import SimpleNamespace

sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests")]

import torch  # noqa: E402
from test_model import build, random_tokens, randomize_, small_recipe  # noqa: E402
from torch._dynamo.utils import compile_times, counters  # noqa: E402

from speedrun.build import compiled_runner  # noqa: E402

torch.manual_seed(0)
model = randomize_(build(small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10))).train()
runner = compiled_runner(model, SimpleNamespace(compile=True))
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
t0 = time.time()
losses = []
for step in (0, 9):  # sampled, then full softmax
    model.set_step(step)
    loss = runner(tokens[:-1], tokens[1:], 4)
    loss.backward()
    losses.append(loss.item())
print(type(runner).__name__, "losses", losses, f"{time.time() - t0:.1f}s")
print("inductor", {k: v for k, v in counters["inductor"].items() if "cache" in k})
print("aot", dict(counters["aot_autograd"]))
print("graph_break", sum(counters["graph_break"].values()))
print(compile_times(repr="str", aggregate=True).split("\n")[:4])
