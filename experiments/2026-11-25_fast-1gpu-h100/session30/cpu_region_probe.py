"""CPU probe (torch 2.13.0+cpu): torch.compiler.nested_compile_region on Block.forward, so that structurally equal
blocks compile once (hierarchical compilation), against the plain whole-model compile; 12 small layers, dense
attention. Run from the repository root: TORCHINDUCTOR_CACHE_DIR=<empty> PYTHONPATH=. python THIS plain|region."""
import sys
import time

import torch

sys.path.insert(0, "tests")
from test_model import build, random_tokens, randomize_, small_recipe

from speedrun.model import gpt

if sys.argv[1] == "region":
    gpt.Block.forward = torch.compiler.nested_compile_region(gpt.Block.forward)
r = small_recipe(num_layers=12, window_pattern="LSSSLSSSSLSL", value_embeds=3, steps=10)
model = randomize_(build(r)).train()
compiled = torch.compile(model, dynamic=False)
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
for i in range(2):
    t0 = time.perf_counter()
    loss = compiled(tokens[:-1], tokens[1:], 4)
    loss.backward()
    print(sys.argv[1], f"call {i}: {time.perf_counter() - t0:.1f}s loss {loss.item():.6f}", flush=True)
