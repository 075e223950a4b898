# Part 44: usage `python flex_cpu_compare.py CHECKOUT OUT.pt` from outside the checkout; then compare two OUT files
# with torch.equal. Run for main and for the branch candidates-s43 (a git worktree).
"""The model's compiled FlexAttention forward on this CPU (Inductor's C++ flex kernel, which reads the block lists as
the GPU kernel does), `fast`'s features at a reduced shape, logits at the first and last window: the same logits from
two versions of the model code mean the refactor computes the same thing on the path every GPU run takes. All layers
have the long window ('LLLL'): in torch 2.13 Inductor's CPU flex lowering fails when a mask_mod captures a tensor
computed in the graph (the short window, derived from the long one), "NoValidChoicesError" (GPU unaffected)."""
import sys, torch
sys.path.insert(0, sys.argv[1])
from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe
r = load_recipe("fast", ["num_layers=4", "window_pattern='LLLL'", "no_attn_layers=[0]", "no_mlp_layers=[0]",
                         "model_dim=128", "num_heads=2", "head_dim=64", "mlp_hidden=512", "value_embeds=1",
                         "seq_len=1024", "val_seq_len=1024", "batch_tokens=1024", "window_ramp_tokens=512",
                         "fp8_mlp=false", "fp8_head=false", "fused_head_loss=false", "sampled_head_rows=0"])
torch.manual_seed(0)
flex = GPT(r, attention="flex").eval()
with torch.no_grad():
    for p in flex.parameters():
        p.normal_(0.0, 0.05)
tokens = torch.randint(0, 50000, (1024,), generator=torch.Generator().manual_seed(1))
tokens[[0, 200, 450, 460, 900]] = 50256
cf = torch.compile(flex, dynamic=False)
out = {}
with torch.no_grad():
    for step in (0, r.steps - 1):
        out[step] = cf(tokens, None, flex.window(step)).clone()
torch.save(out, sys.argv[2])
