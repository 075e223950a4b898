"""CPU probe: hierarchical compilation with one region per block kind, against the plain whole-model compile.

Part 30's probe marked `Block.forward` itself as a nested compile region and failed while tracing: TorchDynamo keys a
region's reuse on its code object, and it stamped block 0's subgraph onto block 1, which has different inputs.
Here each kind of block (attention or not, MLP or not, key offset or not, value embedding or not) gets a code object
of its own (the same body, renamed), so only blocks of one kind share a compiled region. A 12-layer small model with
`fast`'s architecture flags, dense attention, empty Inductor caches. Each build's gradients after one forward and
backward are compared with the eager model's (largest relative difference over the parameters).
    TORCHINDUCTOR_CACHE_DIR=<empty> PYTHONPATH=. python THIS plain|kinds|kinds_noreuse
kinds_noreuse turns off Inductor's in-place and reused buffers (`inplace_buffers`, `allow_buffer_reuse`): with
either one on, the regions' gradients came out wrong here.
"""
import sys
import time
import types

import torch
import torch._inductor.config

sys.path.insert(0, "tests")
from test_model import build, random_tokens, randomize_, small_recipe

from speedrun.model import gpt


def block_body(self, x, ve, x0, mask, not_start=None):
    x = self.lambdas[0] * x + self.lambdas[1] * x0
    if self.attn is not None:
        x = x + self.attn(gpt.norm(x), ve, mask, not_start)
    return x + self.mlp(gpt.norm(x)) if self.mlp is not None else x


def region_for(kind: tuple) -> types.FunctionType:
    name = "block_" + "".join(str(int(k)) for k in kind)
    body = types.FunctionType(block_body.__code__.replace(co_name=name), block_body.__globals__, name)
    return torch.compiler.nested_compile_region(body)


mode = sys.argv[1]
r = small_recipe(num_layers=12, window_pattern="LSSSLSSLSSSL", value_embeds=3, steps=10, no_mlp_layers=[0],
                 no_attn_layers=[0, 7], key_offset=True, attn_gate=True, smear=True, tied_head=True)
model = randomize_(build(r)).train()
tokens = random_tokens(257, seed=3, eot_at=(0, 90))
model(tokens[:-1], tokens[1:], 4).backward()
eager = {n: p.grad.clone() for n, p in model.named_parameters()}
if mode.startswith("kinds"):
    regions = {}
    for i, block in enumerate(model.blocks):
        kind = (block.attn is not None, block.mlp is not None, bool(block.attn is not None and block.attn.key_offset),
                model.ve_table[i] is not None)
        block.region = regions.setdefault(kind, region_for(kind))
    gpt.Block.forward = lambda self, *args: self.region(self, *args)
    print(f"{len(regions)} block kinds for {len(model.blocks)} blocks: {sorted(regions)}", flush=True)
if mode == "kinds_noreuse":
    torch._inductor.config.inplace_buffers = torch._inductor.config.allow_buffer_reuse = False
compiled = torch.compile(model, dynamic=False)
for i in range(2):
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss = compiled(tokens[:-1], tokens[1:], 4)
    loss.backward()
    seconds = time.perf_counter() - t0
    worst = max(((p.grad - eager[n]).abs().max() / eager[n].abs().max()).item() for n, p in model.named_parameters())
    print(f"torch {torch.__version__} {mode} call {i}: {seconds:.1f}s loss {loss.item():.6f}, gradients against "
          f"eager: largest relative difference {worst:.2e}", flush=True)
