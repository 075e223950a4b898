"""speedrun.model.sampled_head: the training loss over a fixed number of head rows (every target's among them)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_model import build, random_tokens, randomize_, small_recipe
from test_train import SMALL, run_recipe, shard_files  # noqa: F401 (a fixture)

from speedrun.build import SplitCompiled, build_model, build_optimizers, compiled_runner
from speedrun.errors import TrainingError
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets
from speedrun.model.sampled_head import candidate_rows, negatives_offset, rows_at, rows_needed
from speedrun.plan import make_plan
from speedrun.recipe import RecipeError, load_recipe
from speedrun.step import uncompiled, warmup_and_restore
from speedrun.train import run


def test_candidate_rows_hold_every_target_first_then_the_lowest_other_ids():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 1000, (300,), generator=g)
    extra = torch.randint(0, 1000, (300, 2), generator=g)
    extra[::7, 1] = -1
    ids, t, e, left_out = candidate_rows(targets, extra, vocab_rows=1024, rows=768)
    wanted = set(targets.tolist()) | set(extra[extra >= 0].tolist()) | {0}  # a -1 marks row 0 too
    k = len(wanted)
    assert ids.shape == (768,) and left_out.item() == 0
    assert ids[:k].tolist() == sorted(wanted)
    others = ids[k:].tolist()
    assert others == sorted(set(range(1024)) - wanted)[: 768 - k]
    assert torch.equal(ids[t], targets) and t.max() < k
    assert torch.equal(e < 0, extra < 0) and torch.equal(ids[e[e >= 0]], extra[extra >= 0])
    _, _, none, _ = candidate_rows(targets, None, 1024, 768)
    assert none is None
    *_, over = candidate_rows(targets, extra, 1024, 128)
    assert over.item() == k - 128
    # the negatives start at an offset (a device tensor in the model) and wrap around
    for offset in (500, torch.tensor(500)):
        ids, t, _, _ = candidate_rows(targets, extra, vocab_rows=1024, rows=768, offset=offset)
        free = sorted(set(range(1024)) - wanted)
        assert ids[:k].tolist() == sorted(wanted) and torch.equal(ids[t], targets)
        assert ids[k:].tolist() == ([i for i in free if i >= 500] + [i for i in free if i < 500])[: 768 - k]


def test_rows_and_negatives_follow_the_schedule():
    assert [rows_at(s, 100, 256, 0.9) for s in (0, 89, 90, 99)] == [256, 256, 0, 0]
    assert rows_at(0, 100, 0, 0.9) == 0
    assert [negatives_offset(s, 12288, 50304) for s in (0, 1, 4, 5)] == [0, 12288, 49152, 11136]
    model = build(small_recipe(sampled_head_rows=1024, steps=100))
    model.set_step(3)
    assert model.head_rows == 1024 and model.head_offset.item() == 3072


def sampled_and_full(model, rows, seed=3):
    """(sampled loss, its lm_head gradient, full loss, its logits, the rows used) for one row of tokens."""
    tokens = random_tokens(257, seed=seed, eot_at=(0, 90))
    inputs, targets = tokens[:-1], tokens[1:]
    model.train()
    model.head_rows = rows
    loss = model(inputs, targets, 4)
    loss.backward()
    grad = model.lm_head.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    model.head_rows = 0
    with torch.no_grad():
        logits = model(inputs, None, 4).view(-1, model.recipe.padded_vocab)
        full = model(inputs, targets, 4)
    extra = mtp_targets(targets, model.mtp_w.numel()) if model.mtp_w is not None else None
    ids, t, e, _ = candidate_rows(targets, extra, model.recipe.padded_vocab, rows)
    return loss, grad, full, logits, (ids, t, e)


@pytest.mark.parametrize("mtp", [False, True], ids=["next-token", "mtp"])
def test_sampled_loss_is_the_cross_entropy_over_its_rows(mtp):
    r = small_recipe(**(dict(mtp_weights=[0.5, 0.25]) if mtp else {}))
    model = randomize_(build(r))
    if mtp:
        model.set_step(0)
    loss, grad, full, logits, (ids, t, e) = sampled_and_full(model, rows=1024)
    sub = logits[:, ids]
    want = mtp_cross_entropy(sub, t, e, model.mtp_w) if mtp else F.cross_entropy(sub, t)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    targets = random_tokens(257, seed=3, eot_at=(0, 90))[1:]
    whole = (mtp_cross_entropy(logits, targets, mtp_targets(targets, 2), model.mtp_w) if mtp
             else F.cross_entropy(logits, targets))
    assert loss.item() < whole.item()  # fewer rows in the normaliser
    outside = torch.ones(r.padded_vocab, dtype=torch.bool)
    outside[ids] = False
    assert grad[outside].abs().max() == 0 and grad[ids].abs().max() > 0


def test_with_every_row_the_sampled_loss_is_the_full_loss():
    model = randomize_(build(small_recipe()))
    loss, grad, full, _, _ = sampled_and_full(model, rows=model.recipe.padded_vocab)
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)
    model.head_rows = 0
    tokens = random_tokens(257, seed=3, eot_at=(0, 90))
    model(tokens[:-1], tokens[1:], 4).backward()
    assert torch.allclose(grad, model.lm_head.weight.grad, rtol=1e-4, atol=1e-8)


def test_set_step_switches_to_the_full_softmax_and_validation_is_always_full():
    r = small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10)
    model = randomize_(build(r))
    model.set_step(4)
    assert model.head_rows == 1024
    tokens = random_tokens(257, seed=5)
    with torch.no_grad():
        sampled_eval = model.eval()(tokens[:-1], tokens[1:], 4)
        model.head_rows = 0
        full_eval = model(tokens[:-1], tokens[1:], 4)
    assert sampled_eval.item() == full_eval.item()
    model.set_step(5)
    assert model.head_rows == 0


def test_recipe_checks_the_row_count():
    for bad in (100, 50304, 60000, -128):
        with pytest.raises(RecipeError, match="sampled_head_rows"):
            small_recipe(sampled_head_rows=bad)
    with pytest.raises(RecipeError, match="sampled_head_end_frac"):
        small_recipe(sampled_head_end_frac=0.0)


def test_warm_up_compiles_both_heads_and_forgets_its_random_tokens(monkeypatch):
    r = load_recipe("tiny", {**SMALL, "warmup_steps": 4, "sampled_head_rows": 128})
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    rows_seen = []
    real = type(model).forward

    def spy(self, inputs, targets, long_blocks):
        rows_seen.append(self.head_rows)
        return real(self, inputs, targets, long_blocks)

    monkeypatch.setattr(type(model), "forward", spy)
    warmup_and_restore(model, build_optimizers(model, r), r, plan, 1)
    assert rows_seen == [128, 0, 128, 0]
    assert model.head_left_out.item() == 0  # 256 random tokens: more distinct targets than 128 rows, forgotten
    # sampled to the last step: the full head is never trained with, so the warm-up does not compile it
    rows_seen.clear()
    to_the_end = load_recipe("tiny", {**SMALL, "warmup_steps": 4, "sampled_head_rows": 128, "sampled_head_end_frac": 1.0})
    model = build_model(to_the_end, plan)
    warmup_and_restore(model, build_optimizers(model, to_the_end), to_the_end, plan, 1)
    assert rows_seen == [128, 128, 128, 128]


def test_a_sampled_run_trains_and_too_few_rows_stop_it(shard_files, tmp_path):  # noqa: F811
    r = run_recipe(shard_files, sampled_head_rows=1024, sampled_head_end_frac=0.5)
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "ok"), say=lambda *a, **k: None)
    first, last = result.val_losses[0][1], result.val_losses[-1][1]
    assert abs(first - math.log(r.padded_vocab)) < 1e-3 and last < first - 0.05
    few = run_recipe(shard_files, sampled_head_rows=128)
    with pytest.raises(RecipeError, match=r"^sampled_head_rows=128 is too few for these train files: step \d+'s "
                                          r"targets need \d+ head rows .*set sampled_head_rows to \d+ or more"):
        run(few, make_plan(few, force_device="cpu"), log_dir=str(tmp_path / "few"), say=lambda *a, **k: None)
    assert not list((tmp_path / "few").glob("*"))  # stopped before any work: not even a run log


def test_the_device_count_backs_up_the_host_check(shard_files, tmp_path, monkeypatch):  # noqa: F811
    # Should the host's count (run_data) ever pass a step the device cannot score, the device's stops the run.
    monkeypatch.setattr("speedrun.run_data.check_sampled_head_rows", lambda *a: None)
    few = run_recipe(shard_files, sampled_head_rows=128)
    with pytest.raises(TrainingError, match=r"sampled_head_rows=128 is too few: a training step before step 3 had "
                                            r"\d+ more distinct target tokens.*raise sampled_head_rows"):
        run(few, make_plan(few, force_device="cpu"), log_dir=str(tmp_path / "few"), say=lambda *a, **k: None)


@pytest.mark.parametrize("mtp", [False, True])
def test_the_hosts_row_count_is_the_devices(mtp):
    g = torch.Generator().manual_seed(1)
    for vocab in (40, 300, 1000):  # dense and sparse rows, with and without id 0 among the targets
        targets = torch.randint(1 if vocab == 300 else 0, vocab, (256,), generator=g)
        extra = mtp_targets(targets, 2) if mtp else None
        need = rows_needed(targets.numpy().astype(np.uint16), extra_targets=mtp)
        for rows in (128, 256):
            *_, left_out = candidate_rows(targets, extra, vocab_rows=1024, rows=rows)
            assert left_out.item() == max(0, need - rows)


def test_switching_to_the_full_softmax_recompiles_the_head_alone():
    # The warm-up compiles the sampled and the full head; the trunk (attention, blocks) must compile once, or a
    # launch pays for the whole model twice. The runner compiles trunk and head as two frames: no graph break, so
    # TorchDynamo traces nothing twice.
    graph_sizes = []

    def recording_backend(gm, example_inputs):
        graph_sizes.append(sum(node.op == "call_function" for node in gm.graph.nodes))
        return gm.forward

    r = small_recipe(sampled_head_rows=1024, sampled_head_end_frac=0.5, steps=10)
    model = randomize_(build(r)).train()
    runner = compiled_runner(model, SimpleNamespace(compile=True), backend=recording_backend)
    assert uncompiled(runner) is model and set(runner.state_dict()) == {f"_orig_mod.{k}" for k in model.state_dict()}
    tokens = random_tokens(257, seed=3, eot_at=(0, 90))
    torch._dynamo.utils.counters.clear()
    losses = {}
    for step in (0, 9, 0, 9):  # sampled, full, then both again from the compiled cache
        model.set_step(step)
        loss = runner(tokens[:-1], tokens[1:], 4)
        loss.backward()
        losses.setdefault(step, []).append(loss.item())
    assert len(graph_sizes) == 3, graph_sizes  # the trunk, the sampled head, the full head; nothing more
    trunk, *heads = graph_sizes
    assert trunk > 10 * max(heads), graph_sizes
    assert not torch._dynamo.utils.counters["graph_break"], dict(torch._dynamo.utils.counters["graph_break"])
    for step in (0, 9):
        model.set_step(step)
        assert losses[step] == [pytest.approx(model(tokens[:-1], tokens[1:], 4).item(), rel=1e-5)] * 2
    runner.eval()  # train/eval reach the model through the wrapper
    assert not model.training


def test_a_recipe_without_a_sampled_head_compiles_the_model_whole():
    r = small_recipe(steps=10)
    runner = compiled_runner(build(r), SimpleNamespace(compile=True), backend="eager")
    assert isinstance(runner, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(compiled_runner(build(small_recipe(sampled_head_rows=1024)), SimpleNamespace(compile=True),
                                      backend="eager"), SplitCompiled)
