# Part 43: usage `python graph_probe.py OUT` in a checkout; writes OUT (graph code) and OUT.canon (nodes without names).
# Run on main and on candidates-s43, then: diff <(sed -E "s/ at 0x[0-9a-f]+//g" main.canon) <(sed -E ... branch.canon)
"""Dump TorchDynamo's FX graphs of GPT.features (the trunk; `fast` at a reduced shape, flex and dense back-ends) on
CPU, to compare two versions of the model code: the same nodes mean the same graph for Inductor to compile. Traced
under no_grad: FlexAttention has no backward on CPU."""
import sys, torch, hashlib
import torch._dynamo as dynamo
from speedrun.recipe import load_recipe
from speedrun.model.gpt import GPT
out = open(sys.argv[1], "w")
torch.manual_seed(0)
over = {"num_layers": 4, "model_dim": 128, "num_heads": 2, "head_dim": 64, "mlp_hidden": 512, "seq_len": 1024,
        "val_seq_len": 1024, "batch_tokens": 1024, "attn_block_size": 128, "value_embeds": 1, "window_pattern": "LSSL",
        "no_attn_layers": [0], "no_mlp_layers": [0], "fp8_mlp": False, "fused_head_loss": False, "fp8_head": False,
        "sampled_head_rows": 0, "window_ramp_tokens": 256}
r = load_recipe("fast", {k: v for k, v in over.items()})
for back in ("flex", "dense"):
    m = GPT(r, attention=back).train()
    toks = torch.randint(0, 50000, (1024,)); toks[::200] = 50256
    w = m.window(900)
    with torch.no_grad():
        ex = dynamo.explain(m.features)(toks, w)
    out.write(f"== {back}: graphs {ex.graph_count} breaks {ex.graph_break_count} ops {ex.op_count}\n")
    for g in ex.graphs:
        code = g.code
        out.write(hashlib.sha1(code.encode()).hexdigest() + "\n" + code + "\n")
    dynamo.reset()
out.close()
# structural form: every node as (op, target, args) with other nodes named by their index, names dropped
import torch.fx as fx
def canon(g):
    idx = {n: i for i, n in enumerate(g.graph.nodes)}
    def rep(a):
        return fx.node.map_arg(a, lambda n: f"%{idx[n]}")
    return "\n".join(f"{n.op} {n.target if n.op != 'placeholder' else ''} {rep(n.args)} {rep(n.kwargs)}" for n in g.graph.nodes)
with open(sys.argv[1] + ".canon", "w") as c:
    for back in ("flex", "dense"):
        m = GPT(r, attention=back).train()
        toks = torch.randint(0, 50000, (1024,)); toks[::200] = 50256
        with torch.no_grad():
            ex = dynamo.explain(m.features)(toks, m.window(900))
        for g in ex.graphs:
            c.write(f"== {back}\n" + canon(g) + "\n")
        dynamo.reset()
