"""`tied_head`: one (padded_vocab, dim) table is the token embedding and the head (upstream record 51)."""

from __future__ import annotations

import math

import pytest
import torch
from test_model import build, random_tokens, small_recipe
from test_train import run_recipe, shard_files  # noqa: F401 (a fixture)

from speedrun.build import build_optimizers
from speedrun.model.gpt import TIED_INIT_STD
from speedrun.plan import make_plan
from speedrun.train import run

FAST = dict(smear=True, attn_gate=True, no_mlp_layers=[0])


def test_one_table_is_the_embedding_and_the_head():
    r = small_recipe(tied_head=True)
    tied, untied = build(r), build(small_recipe())
    assert tied.lm_head.weight is tied.embed.weight
    assert tuple(tied.embed.weight.shape) == (r.padded_vocab, r.model_dim)
    assert abs(tied.embed.weight.std().item() - TIED_INIT_STD) < 0.05 * TIED_INIT_STD
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(untied) - count(tied) == r.vocab_size * r.model_dim  # the separate embedding table is gone


@pytest.mark.parametrize("features", [{}, FAST], ids=["plain", "fast"])
def test_param_groups_hold_the_table_once_in_the_head_group(features):
    model = build(small_recipe(tied_head=True, **features))
    groups = model.param_groups()
    seen = [id(p) for ps in groups.values() for p in ps]
    assert len(seen) == len(set(seen)) and set(seen) == {id(p) for p in model.parameters()}
    assert [id(p) for p in groups["head"]] == [id(model.embed.weight)]
    assert {id(p) for p in groups["embed"]} == {id(t.weight) for t in model.value_embeds}
    adam, _ = build_optimizers(model, model.recipe)
    lr_of = {id(p): g["lr"] for g in adam.param_groups for p in g["params"]}
    assert lr_of[id(model.embed.weight)] == model.recipe.lr_head


def test_the_tables_gradient_is_the_embeddings_plus_the_heads():
    """The tied model's gradient equals, row by row, an untied twin's embedding gradient plus its head gradient
    when both of the twin's tables hold the tied table's values."""
    r = small_recipe(tied_head=True, **FAST)
    tied = build(r)
    twin = build(small_recipe(**FAST))
    with torch.no_grad():
        torch.nn.init.normal_(tied.embed.weight, std=0.3)  # large enough that the head's logits carry signal
        state = {k: v for k, v in tied.state_dict().items() if k not in ("embed.weight", "lm_head.weight")}
        twin.load_state_dict(state, strict=False)
        twin.embed.weight.copy_(tied.embed.weight[: r.vocab_size])
        twin.lm_head.weight.copy_(tied.embed.weight)
    tokens = random_tokens(257, seed=3, eot_at=(0, 100))
    losses = []
    for m in (tied, twin):
        loss = m(tokens[:-1], tokens[1:], 4)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    want = twin.lm_head.weight.grad.clone()
    want[: r.vocab_size] += twin.embed.weight.grad
    got = tied.embed.weight.grad
    assert got.abs().max() > 0 and torch.allclose(got, want, rtol=1e-4, atol=1e-7)
    assert twin.embed.weight.grad.abs().sum() > 0 and twin.lm_head.weight.grad.abs().sum() > 0  # both paths count


def test_state_dict_round_trip_keeps_the_tie():
    a, b = build(small_recipe(tied_head=True), seed=0), build(small_recipe(tied_head=True), seed=1)
    b.load_state_dict(a.state_dict())
    assert b.lm_head.weight is b.embed.weight and torch.equal(b.embed.weight, a.embed.weight)
    with torch.no_grad():
        b.embed.weight.add_(1.0)
    assert torch.equal(b.lm_head.weight, a.embed.weight + 1.0)


def test_a_tied_run_trains_and_its_first_loss_is_near_uniform(shard_files, tmp_path):  # noqa: F811
    r = run_recipe(shard_files, tied_head=True)
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path), say=lambda *a, **k: None)
    first, last = result.val_losses[0][1], result.val_losses[-1][1]
    assert abs(first - math.log(r.padded_vocab)) < 0.05  # small head: nearly uniform logits
    assert last < first - 0.05

