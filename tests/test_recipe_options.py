"""Recipe options tried on the 1-GPU track: an asymmetric logit cap (logit_offset), a random-initialised attention
output projection (attn_proj_random_init) and the scalars' own Adam betas (scalar_adam_betas)."""

import torch
import torch.nn.functional as F

from speedrun.build import build_optimizers
from speedrun.model.gpt import GPT, norm
from speedrun.recipe import load_recipe

TINY = dict(steps=4, warmup_steps=0)


def test_logit_offset_shifts_the_raw_logits_inside_the_sigmoid():
    r = load_recipe("tiny", {**TINY, "logit_cap": 23.0, "logit_offset": 5.0})
    torch.manual_seed(0)
    model = GPT(r)
    torch.nn.init.normal_(model.lm_head.weight, std=0.05)
    x = torch.randn(1, 64, r.model_dim)
    raw = F.linear(norm(x), model.lm_head.weight)
    torch.testing.assert_close(model.head(x), 23.0 * torch.sigmoid((raw + 5.0) / r.logit_cap_div))
    # the offset changes the loss: softmax is not shift-invariant through the sigmoid
    base = GPT(load_recipe("tiny", {**TINY, "logit_cap": 23.0}))
    base.load_state_dict(model.state_dict())
    assert not torch.allclose(base.head(x), model.head(x))


def test_attn_proj_random_init_only_touches_the_attention_output():
    on = GPT(load_recipe("tiny", {**TINY, "attn_proj_random_init": True}))
    off = GPT(load_recipe("tiny", TINY))
    for b_on, b_off in zip(on.blocks, off.blocks):
        if b_on.attn is not None:
            w = b_on.attn.c_proj.weight
            bound = 3**0.5 * 0.5 * w.size(1) ** -0.5  # the same uniform init as the other matrices
            assert w.abs().max() <= bound * (1 + 1e-6) and w.abs().max() > 0.9 * bound
            assert torch.all(b_off.attn.c_proj.weight == 0)
        if b_on.mlp is not None:
            assert torch.all(b_on.mlp.c_proj.weight == 0)
    assert torch.all(on.lm_head.weight == 0)


def test_scalar_adam_betas_apply_to_the_scalar_group_only():
    r = load_recipe("tiny", {**TINY, "scalar_adam_betas": [0.9, 0.99]})
    model = GPT(r)
    adam, _ = build_optimizers(model, r)
    scalars = {id(p) for p in model.param_groups()["scalar"]}
    for g in adam.param_groups:
        is_scalar = {id(p) for p in g["params"]} <= scalars
        assert tuple(g["betas"]) == ((0.9, 0.99) if is_scalar else tuple(r.adam_betas))
    default = load_recipe("tiny", TINY)
    adam, _ = build_optimizers(GPT(default), default)
    assert all(tuple(g["betas"]) == tuple(default.adam_betas) for g in adam.param_groups)
