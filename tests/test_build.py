"""What `speedrun.build` hands the trainer: the model compiled with its blocks as regions shared by kind (checked
against the eager model's gradients, through Inductor), or the model itself."""

import collections

import pytest
import torch
from test_model import build, random_tokens, randomize_, small_recipe

from speedrun.build import INDUCTOR_OPTIONS, REGION_INDUCTOR_OPTIONS, block_kind, compiled_runner, share_block_regions
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

# fast's architecture at a small size: blocks without attention, without MLP, with the key offset, value embeddings
FAST_LIKE = dict(num_layers=6, window_pattern="LSSLSL", value_embeds=2, steps=10, no_mlp_layers=[0],
                 no_attn_layers=[0, 3], key_offset=True, attn_gate=True, smear=True, tied_head=True)


def test_blocks_of_one_kind_share_a_region_and_kinds_do_not():
    model = build(small_recipe(**FAST_LIKE))
    kinds = [block_kind(model, i) for i in range(len(model.blocks))]
    assert share_block_regions(model) == len(set(kinds)) == 5  # layers 1 and 4 alike (value embedding, short window)
    for i, a in enumerate(model.blocks):
        for j, b in enumerate(model.blocks):
            assert (a.region is b.region) == (kinds[i] == kinds[j])
    codes = {block.region.__marked_compile_region_fn__.__code__ for block in model.blocks}
    assert len(codes) == 5  # TorchDynamo keys reuse on the code object: one per kind
    # and TorchDynamo reuses one traced block graph for layers 1 and 4 (torch 2.13 inlines a region used once)
    graphs = []
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=False, backend=lambda gm, inputs: graphs.append(gm) or gm.forward)
    tokens = random_tokens(257, seed=3, eot_at=(0, 90))
    compiled(tokens[:-1], tokens[1:], 4)
    torch._dynamo.reset()
    calls = [n for gm in graphs for n in gm.graph.nodes
             if n.op == "call_function" and n.target is torch.ops.higher_order.invoke_subgraph]
    uses = collections.Counter(n.args[0].target for n in calls)
    assert sorted(uses.values())[-1] == 2 and sum(uses.values()) <= 6, uses


def test_compiled_regions_train_like_the_eager_model():
    # One forward and backward through Inductor, regions shared: the loss and every gradient as the eager model's.
    # With Inductor's in-place or reused buffers on, gradients here came out wrong by up to 40x (part 31's probe).
    torch._dynamo.reset()
    model = randomize_(build(small_recipe(**FAST_LIKE))).train()
    tokens = random_tokens(257, seed=3, eot_at=(0, 90))
    eager_loss = model(tokens[:-1], tokens[1:], 4)
    eager_loss.backward()
    eager = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    share_block_regions(model)
    compiled = torch.compile(model, dynamic=False, options=REGION_INDUCTOR_OPTIONS)
    loss = compiled(tokens[:-1], tokens[1:], 4)
    loss.backward()
    torch._dynamo.reset()
    assert loss.item() == pytest.approx(eager_loss.item(), rel=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, eager[name], rtol=1e-3, atol=1e-4 * eager[name].abs().max()), name


def test_the_compiled_model_gets_region_options_this_torch_knows(monkeypatch):
    known = torch._inductor.config.get_config_copy()
    options = {**INDUCTOR_OPTIONS, **REGION_INDUCTOR_OPTIONS}
    assert all(key in known for key in options), sorted(options)
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: seen.update(kwargs, model=model) or "compiled")
    r = load_recipe("tiny", ["compile=on"])
    plan = make_plan(r, force_device="cpu")
    model = build(r)
    assert plan.compile and compiled_runner(model, plan) == "compiled"
    assert seen == {"model": model, "dynamic": False, "options": options}
    assert all(block.region is not None for block in model.blocks)


def test_without_compile_the_model_runs_as_it_is():
    r = load_recipe("tiny", ["compile=off"])
    plan = make_plan(r, force_device="cpu")
    model = build(r)
    assert compiled_runner(model, plan) is model and all(block.region is None for block in model.blocks)
