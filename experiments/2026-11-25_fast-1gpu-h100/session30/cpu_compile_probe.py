"""CPU probe (2 cores, torch 2.13.0+cpu, Inductor): seconds to compile the sampled head's graph, then the switch to the
full one. Run from the repository root as `PYTHONPATH=. python THIS`, on main (one frame) and on candidates-s29 (the
graph break after the trunk); the output is in cpu_compile_probe.txt."""

import sys
import time

import torch

sys.path.insert(0, "tests")
from test_model import build, random_tokens, randomize_, small_recipe  # noqa: E402

import speedrun  # noqa: E402

r = small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10)
model = randomize_(build(r)).train()
compiled = torch.compile(model, dynamic=False)
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
for step in (0, 9, 0, 9):  # sampled, full, then both again from the compiled cache
    model.set_step(step)
    t0 = time.perf_counter()
    compiled(tokens[:-1], tokens[1:], 4).backward()
    print(f"step {step} rows {model.head_rows}: {time.perf_counter() - t0:.1f}s (forward + backward)", flush=True)
print(speedrun.__file__)
