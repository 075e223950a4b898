# Run from a checkout (cwd on sys.path): compile a small sampled-head model's train step with Inductor on CPU and
# report Inductor's FX graph cache and AOTAutograd cache counters, and TorchDynamo's tracing time.
import sys, time, os
sys.path.insert(0, os.getcwd()); sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
import torch
from torch._dynamo.utils import counters, compile_times
from test_model import build, random_tokens, randomize_, small_recipe
from types import SimpleNamespace
from speedrun.build import compiled_runner
torch.manual_seed(0)
r = small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10)
model = randomize_(build(r)).train()
runner = compiled_runner(model, SimpleNamespace(compile=True))
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
t0 = time.time()
out = []
for step in (0, 9):
    model.set_step(step)
    loss = runner(tokens[:-1], tokens[1:], 4)
    loss.backward()
    out.append(loss.item())
print(type(runner).__name__, "losses", out, f"{time.time()-t0:.1f}s")
print("inductor", {k: v for k, v in counters["inductor"].items() if "cache" in k})
print("aot", dict(counters["aot_autograd"]))
print("graph_break", sum(counters["graph_break"].values()))
print(compile_times(repr="str", aggregate=True).split("\n")[:4])
