"""CPU probe: the first sampled step and the switch to the full head through compiled_runner, on empty Inductor
caches; main (one frame with a graph break) against candidates-s30 (trunk and head compiled as two frames)."""
import sys
import time
from types import SimpleNamespace

import torch

sys.path.insert(0, "tests")
from test_model import build, random_tokens, randomize_, small_recipe  # noqa: E402

import speedrun  # noqa: E402
from speedrun.build import compiled_runner  # noqa: E402

r = small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10, num_layers=12,
                 window_pattern="LSSSLSSSSLSL", value_embeds=3)
model = randomize_(build(r)).train()
runner = compiled_runner(model, SimpleNamespace(compile=True))
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
for step in (0, 9, 0, 9):
    model.set_step(step)
    t0 = time.perf_counter()
    runner(tokens[:-1], tokens[1:], 4).backward()
    print(f"step {step} rows {model.head_rows}: {time.perf_counter() - t0:.1f}s (forward + backward)", flush=True)
print(type(runner).__name__, speedrun.__file__)
print(torch._dynamo.utils.compile_times(repr="str", aggregate=True))
