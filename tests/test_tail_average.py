"""speedrun.optim.tail_average: the endgame EMA of some parameter groups and its blend into the weights."""

from __future__ import annotations

import pytest
import torch
from test_model import build, small_recipe
from test_train import run_recipe, shard_files  # noqa: F401 (a fixture)

from speedrun.optim.tail_average import TailAverage, tail_average_for
from speedrun.plan import make_plan
from speedrun.recipe import RecipeError
from speedrun.train import run


def test_average_starts_at_its_step_then_follows_the_ema_and_blends():
    p = torch.nn.Parameter(torch.tensor([0.0, 10.0]))
    q = torch.nn.Parameter(torch.tensor([[1.0]]))
    tail = TailAverage([p, q], start_step=3, decay=0.75, blend=0.4)
    seen = []
    for done in range(1, 7):
        with torch.no_grad():
            p.add_(1.0)
            q.mul_(2.0)
        seen.append((p.detach().clone(), q.detach().clone()))
        tail.update(done)
        if done < 3:
            assert tail.avg is None
    # avg after step 3 = weights after step 3; then avg += 0.25 * (w - avg) after steps 4, 5, 6
    want_p, want_q = seen[2]
    for w_p, w_q in seen[3:]:
        want_p, want_q = want_p + 0.25 * (w_p - want_p), want_q + 0.25 * (w_q - want_q)
    assert torch.allclose(tail.avg[0], want_p) and torch.allclose(tail.avg[1], want_q)
    last_p, last_q = seen[-1]
    tail.blend()
    assert torch.allclose(p, 0.6 * last_p + 0.4 * want_p) and torch.allclose(q, 0.6 * last_q + 0.4 * want_q)


def test_bf16_weights_average_in_fp32():
    p = torch.nn.Parameter(torch.full((4,), 1.0, dtype=torch.bfloat16))
    tail = TailAverage([p], start_step=1, decay=0.999, blend=1.0)
    tail.update(1)
    with torch.no_grad():
        p.fill_(2.0)
    tail.update(2)
    assert tail.avg[0].dtype == torch.float32 and torch.allclose(tail.avg[0], torch.full((4,), 1.001))
    tail.blend()
    assert p.dtype == torch.bfloat16 and torch.equal(p, torch.full((4,), 1.001).bfloat16())


def test_state_round_trip_and_refusals():
    p = torch.nn.Parameter(torch.randn(3, 2))
    a = TailAverage([p], start_step=1, decay=0.9, blend=0.5)
    with pytest.raises(RuntimeError, match="before any update"):
        a.blend()
    b = TailAverage([p], start_step=1, decay=0.9, blend=0.5)
    b.load_state_dict(a.state_dict())
    assert b.avg is None
    a.update(1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.avg[0], a.avg[0]) and b.avg[0] is not a.avg[0]
    with pytest.raises(ValueError, match="does not match"):
        TailAverage([torch.nn.Parameter(torch.zeros(2))], 1, 0.9, 0.5).load_state_dict(a.state_dict())
    with pytest.raises(ValueError):
        TailAverage([], 1, 0.9, 0.5)


@pytest.mark.parametrize("tied", [False, True])
def test_recipe_groups_pick_the_parameters_once(tied):
    r = small_recipe(tied_head=tied, tail_average_groups=["embed", "head"], steps=200)
    model = build(r)
    tail = tail_average_for(model, r)
    want = {id(model.lm_head.weight), id(model.embed.weight), *(id(t.weight) for t in model.value_embeds)}
    assert [id(p) for p in tail.params] == list(dict.fromkeys(id(p) for p in tail.params))  # no parameter twice
    assert {id(p) for p in tail.params} == want and tail.start_step == 130
    assert tail_average_for(model, small_recipe()) is None


def test_recipe_refuses_unknown_groups_and_bad_fractions():
    for bad in ({"tail_average_groups": ["embeds"]}, {"tail_average_groups": ["head", "head"]},
                {"tail_average_start_frac": 1.0}, {"tail_average_decay": 1.0}, {"tail_average_blend": 0.0}):
        with pytest.raises(RecipeError, match="tail_average"):
            small_recipe(**bad)


def test_a_run_averages_only_the_named_groups_and_trains_the_same(shard_files, tmp_path):  # noqa: F811
    quiet = lambda *a, **k: None
    plain = run_recipe(shard_files)
    averaged = run_recipe(shard_files, tail_average_groups=["head", "scalar"], tail_average_start_frac=0.3,
                          tail_average_decay=0.5, tail_average_blend=0.5)
    a = run(plain, make_plan(plain, force_device="cpu"), log_dir=str(tmp_path / "a"), say=quiet)
    b = run(averaged, make_plan(averaged, force_device="cpu"), log_dir=str(tmp_path / "b"), say=quiet)
    assert b.train_losses == a.train_losses  # the average never feeds back into training
    assert b.val_losses[:-1] == a.val_losses[:-1] and b.val_losses[-1] != a.val_losses[-1]
    groups = b.model.param_groups()
    named = {id(p) for g in ("head", "scalar") for p in groups[g]}
    got, want = dict(b.model.named_parameters()), dict(a.model.named_parameters())
    changed = {n for n in got if not torch.equal(got[n], want[n])}
    assert "lm_head.weight" in changed and all(id(got[n]) in named for n in changed)  # the named groups only
