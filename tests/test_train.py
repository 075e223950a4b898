"""The training loop on CPU: warm-up + restore, a short real run and its log, failure handling, log parsing."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL, checkpoint_at

import speedrun.step as step_mod
from speedrun.build import build_model, build_optimizers
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.errors import TrainingError
from speedrun.model.gpt import GPT
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.runlog import FORMAT_LINE, PACKAGE_DIR, LogError, parse_log
from speedrun.step import train_step, warmup_and_restore
from speedrun.train import Trainer, run

LN_VOCAB = math.log(50304)


def quiet(*args, **kwargs):
    pass


def random_batch(seed, T=256):
    t = torch.randint(0, 50257, (T + 1,), generator=torch.Generator().manual_seed(seed))
    return [(t[:-1].int(), t[1:].long())]


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def opt_groups(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


# --- (a) warm-up + restore ----------------------------------------------------------------------------------------------
def test_warmup_and_restore_leaves_no_trace(monkeypatch):
    r = load_recipe("tiny", {**SMALL, "warmup_steps": 2})
    plan = make_plan(r, force_device="cpu")
    assert plan.device.type == "cpu" and plan.attention == "dense"
    model = build_model(r, plan)
    optimizers = build_optimizers(model, r)
    before = snapshot(model)
    groups_before = [opt_groups(o) for o in optimizers]
    torch.manual_seed(1234)
    rng_before = torch.get_rng_state()

    # spy on the warm-up steps: they must really train (otherwise "restored" would prove nothing)
    real_train_step = step_mod.train_step
    changed = []

    def spy(model_, batches, *a, **k):
        out = real_train_step(model_, batches, *a, **k)
        changed.append(not torch.equal(model_.lm_head.weight, before["lm_head.weight"]))
        return out

    monkeypatch.setattr(step_mod, "train_step", spy)
    warmup_and_restore(model, optimizers, r, plan, 1)
    monkeypatch.undo()
    assert changed == [True, True]

    after = snapshot(model)
    assert after.keys() == before.keys()
    for name in before:
        assert torch.equal(after[name], before[name]), f"{name} not restored"
    for opt, groups in zip(optimizers, groups_before):
        assert len(opt.state) == 0, f"{type(opt).__name__} kept state from the warm-up"
        assert opt_groups(opt) == groups
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(p.grad is None for p in model.parameters())

    # a real step now changes the parameters (first the head: everything else sits behind the zero head) ...
    train_step(model, random_batch(1), optimizers, 0, 1, r, 1)
    assert not torch.equal(model.lm_head.weight, before["lm_head.weight"])
    # ... then what feeds it (lambdas, embeddings, output projections), then what sits behind those
    for s in (1, 2):
        train_step(model, random_batch(1 + s), optimizers, s, 1, r, 1)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == [], f"not trained after three steps: {unchanged}"


def test_warmup_then_training_equals_training_without_warmup():
    """Nothing learned off the clock: warm-up + restore, then two steps == the same two steps on a fresh model."""
    results = []
    for warm in (2, 0):
        r = load_recipe("tiny", {**SMALL, "warmup_steps": warm})
        plan = make_plan(r, force_device="cpu")
        model = build_model(r, plan)
        optimizers = build_optimizers(model, r)
        warmup_and_restore(model, optimizers, r, plan, 1)
        losses = [train_step(model, random_batch(10 + s), optimizers, s, 1, r, 1).item() for s in range(2)]
        results.append((losses, snapshot(model)))
    (l_warm, p_warm), (l_cold, p_cold) = results
    assert l_warm == l_cold
    assert abs(l_warm[0] - LN_VOCAB) < 1e-4
    for name in p_warm:
        assert torch.equal(p_warm[name], p_cold[name]), name


def test_train_step_averages_micro_batches():
    """Two micro-batches: the returned loss is their mean (each scaled by 1/2 before backward)."""
    r = load_recipe("tiny", {**SMALL, "batch_tokens": 512})
    plan = make_plan(r, force_device="cpu")
    assert r.grad_accum_steps(1) == 2
    model = build_model(r, plan)
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.05)
    batches = random_batch(20) + random_batch(21)
    with torch.no_grad():
        want = sum(model(x, y, 1).item() for x, y in batches) / 2
    got = train_step(model, batches, build_optimizers(model, r), 0, 1, r, 1)
    assert got.item() == pytest.approx(want, abs=1e-5)


# --- (b) a short real run --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shard_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    train = np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:20_000])
    val = np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:2_000])
    assert len(train) == 20_000 and len(val) == 2_000
    write_shard(d / "train_000000.bin", train)
    write_shard(d / "val_000000.bin", val)
    return d / "train_000000.bin", d / "val_000000.bin"


def run_recipe(shard_files, **extra):
    train, val = shard_files
    return load_recipe("tiny", {**SMALL, "steps": 6, "val_every": 3, "warmup_steps": 1, "val_tokens": 512,
                                "train_files": str(train), "val_files": str(val), "train_loop": False, **extra})


@pytest.fixture(scope="module")
def short_run(shard_files, tmp_path_factory):
    r = run_recipe(shard_files)
    log_dir = tmp_path_factory.mktemp("logs")
    lines = []
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(log_dir), say=lambda *a, **k: lines.append(a))
    return r, result, log_dir, lines


def test_short_run_val_losses(short_run):
    r, result, log_dir, _ = short_run
    steps = [s for s, _ in result.val_losses]
    assert steps == [0, 3, 6]
    first, last = result.val_losses[0][1], result.val_losses[-1][1]
    assert abs(first - LN_VOCAB) < 1e-3
    assert last < first - 0.05
    assert all(math.isfinite(v) for _, v in result.val_losses)
    assert len(result.train_losses) == 6 and all(math.isfinite(v) for v in result.train_losses)
    assert abs(result.train_losses[0] - LN_VOCAB) < 1e-3  # step 1's loss is the untrained model's
    assert result.training_time_ms > 0
    assert isinstance(result.model, GPT)
    assert result.log_path is not None and Path(result.log_path).parent == log_dir


def test_warm_up_line_says_where_the_setup_time_went(short_run):
    """Launch time before any compiling, phase by phase, in the order they run (a slow start shows where it is)."""
    import re
    *_, lines = short_run
    (line,) = [a[0] for a in lines if a[0].startswith("warm-up: ")]
    # with torch.compile on (GPU) a "compiler import" phase comes before the optimisers; this CPU run compiles nothing
    m = re.search(r"\(after ([\d.]+)s of setup: imports\+plan ([\d.]+), data ([\d.]+), model ([\d.]+), "
                  r"optimisers ([\d.]+), log ([\d.]+)\)$", line)
    assert m, line
    total, *phases = map(float, m.groups())
    assert sum(phases) <= total + 0.3  # each rounded to 0.1 s; what is left ran between the log and the warm-up


def test_first_warm_up_step_is_timed_by_phase_on_screen_and_in_the_log(short_run):
    """The first warm-up step (where torch.compile compiles) is split into forward, backward and optimisers, on the
    console and in the run log's launch_phases line, which the log readers pass over."""
    import re
    r, result, _, lines = short_run
    (step1,) = [a[0] for a in lines if a[0].startswith("warm-up step 1/")]
    m = re.fullmatch(r"warm-up step 1/1: ([\d.]+)s \(forward ([\d.]+)s, backward ([\d.]+)s, optimisers ([\d.]+)s\)",
                     step1)
    assert m, step1
    total, *phases = map(float, m.groups())
    assert sum(phases) <= total + 0.2
    text = Path(result.log_path).read_text()
    (logged,) = [ln for ln in text.splitlines() if ln.startswith("launch_phases: ")]
    assert re.fullmatch(r"launch_phases: setup [\d.]+s \(imports\+plan .*, log [\d.]+\); warm-up [\d.]+s "
                        r"\(first step: forward [\d.]+s, backward [\d.]+s, optimisers [\d.]+s\)", logged), logged
    log = parse_log(result.log_path)  # still reads as a run log
    assert log.complete and [s for s, _, _ in log.val] == [0, 3, 6]


def test_train_step_phases_add_up_over_micro_batches():
    r = load_recipe("tiny", SMALL)
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    phases = {}
    t0 = time.perf_counter()
    train_step(model, random_batch(1) + random_batch(2), build_optimizers(model, r), 0, 1, r, 1, phases)
    elapsed = time.perf_counter() - t0
    assert list(phases) == ["forward", "backward", "optimisers"]
    assert all(v > 0 for v in phases.values()) and sum(phases.values()) <= elapsed
    before = dict(phases)
    train_step(model, random_batch(3), build_optimizers(model, r), 1, 1, r, 1, phases)  # adds to the same dict
    assert all(phases[k] > before[k] for k in before)


def test_short_run_log_parses(short_run):
    r, result, log_dir, _ = short_run
    logs = list(log_dir.iterdir())
    assert [str(p) for p in logs] == [result.log_path]
    log = parse_log(result.log_path)
    assert log.status == "complete" and log.complete and log.failure == ""
    assert log.steps == 6
    assert [s for s, _, _ in log.train_steps] == [1, 2, 3, 4, 5, 6]
    for (s, _, loss), want in zip(log.train_steps, result.train_losses):
        assert loss == pytest.approx(want, abs=5e-5)
    assert [s for s, _, _ in log.val] == [0, 3, 6]
    for (s, loss, _), (s2, want) in zip(log.val, result.val_losses):
        assert s == s2 and f"{loss:.4f}" == f"{want:.4f}"
    assert log.final_val_loss == pytest.approx(result.val_losses[-1][1], abs=5e-5)
    times = [t for _, _, t in log.val]
    assert times[0] == 0 and times == sorted(times)
    assert log.training_time_ms == pytest.approx(result.training_time_ms, abs=1)
    assert log.recipe == r.to_dict()
    assert f"torch: {torch.__version__}" in log.environment
    # the host CPU (compile time, so the launch, follows it): a model name and the cores this process may use
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert re.search(rf"^cpu: .+, {cores} usable cores$", log.environment, re.M)
    assert f"\ncwd: {os.getcwd()}\n" in log.environment  # where the command's relative paths start


def test_the_logged_command_is_the_one_to_type_again():
    from speedrun.runlog import logged_command

    assert logged_command(["/venv/bin/speedrun", "train", "--set", "train_files=data/x_*.bin", "--set", "seed=3"]) == (
        "speedrun train --set 'train_files=data/x_*.bin' --set seed=3")
    assert logged_command(["/repo/speedrun/__main__.py", "train"]) == "speedrun train"  # python -m, torchrun
    assert logged_command(["script.py", "a b"]) == "script.py 'a b'"


def test_a_rank_logs_the_command_its_launcher_was_given(monkeypatch):
    from speedrun.runlog import environment_report

    monkeypatch.setenv("SPEEDRUN_COMMAND", "speedrun train --nproc 2")  # set by launch_torchrun for its ranks
    assert "\ncommand: speedrun train --nproc 2\n" in environment_report()


def test_the_log_keeps_the_thread_count_a_cpu_runs_losses_depend_on(monkeypatch):
    from speedrun.runlog import environment_report

    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert "\ncpu_threads: 3 a rank\n" in environment_report()


def test_short_run_log_holds_the_code(short_run):
    _, result, _, _ = short_run
    text = Path(result.log_path).read_text()
    lines = text.splitlines()
    assert lines[0] == FORMAT_LINE
    assert lines[-1] == "=== end: complete ==="
    header = "=== code: speedrun/model/gpt.py ==="
    assert header in lines
    start = lines.index(header) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("=== "))
    body = "\n".join(lines[start:end])
    assert body == (PACKAGE_DIR / "model" / "gpt.py").read_text().rstrip("\n")
    for rel in ("speedrun/train.py", "speedrun/optim/muon.py", "speedrun/recipes/record21.toml"):
        assert f"=== code: {rel} ===" in lines
    assert any(line.startswith("training_time_ms:") for line in lines)
    # JSON recipe section is valid on its own
    rstart = lines.index("=== recipe ===") + 1
    rend = next(i for i in range(rstart, len(lines)) if lines[i].startswith("=== "))
    assert json.loads("\n".join(lines[rstart:rend]))["steps"] == 6


def test_short_run_says_progress(short_run):
    _, _, _, lines = short_run
    text = "\n".join(" ".join(map(str, a)) for a in lines)
    assert "val_loss" in text and "step     6/6" in text


def test_step_lines_give_the_speed_since_the_previous_line(short_run):
    # a line a step here: its ms/step is that step's time (not the mean so far, which would hide a slow stretch)
    _, result, _, lines = short_run
    times = {s: ms for s, ms, _ in parse_log(result.log_path).train_steps}  # the clock at each step, whole ms
    shown = {int(m[1]): (float(m[2].replace(",", "")), float(m[3])) for a in lines
             if (m := re.match(r"step +(\d+)/\d+ \| loss [\d.]+ \| ([\d,]+) tok/s \| (\d+) ms/step", str(a[0])))}
    assert sorted(shown) == list(range(1, 7))
    for step, (tok_s, ms) in shown.items():
        assert abs(ms - (times[step] - times.get(step - 1, 0))) <= 1.5, step
        assert abs(tok_s - 256 / ms * 1000) <= 0.01 * tok_s + 1


def test_truncated_log_is_incomplete(short_run, tmp_path):
    _, result, _, _ = short_run
    lines = Path(result.log_path).read_text().splitlines()
    cut = tmp_path / "cut.txt"
    cut.write_text("\n".join(lines[:-1]) + "\n")  # everything but the end line
    log = parse_log(cut)
    assert log.status == "incomplete" and not log.complete
    assert len(log.train_steps) == 6
    # cut in the middle of the steps
    mid = next(i for i, line in enumerate(lines) if line.startswith("step:4/6"))
    cut.write_text("\n".join(lines[:mid]) + "\n")
    log = parse_log(cut)
    assert log.status == "incomplete"
    assert [s for s, _, _ in log.train_steps] == [1, 2, 3] and [s for s, _, _ in log.val] == [0, 3]


@pytest.mark.parametrize("content", ["", "hello\nworld\n", "speedrun-log v2\n=== recipe ===\n{}\n",
                                     "speedrun-log v1\n=== recipe ===\n{not json\n",
                                     "speedrun-log v1\n=== recipe ===\n{\"seed\": 0}\n"])
def test_not_a_log_raises_log_error(tmp_path, content):
    p = tmp_path / "x.txt"
    p.write_text(content)
    with pytest.raises(LogError, match="x.txt"):
        parse_log(p)


def test_missing_or_binary_log_raises_log_error(tmp_path):
    with pytest.raises(LogError):
        parse_log(tmp_path / "absent.txt")
    p = tmp_path / "shard.bin"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LogError):
        parse_log(p)


def test_nan_loss_stops_the_run_and_marks_the_log(shard_files, tmp_path, monkeypatch):
    real_forward = GPT.forward

    def nan_in_training(self, inputs, targets, long_blocks):
        out = real_forward(self, inputs, targets, long_blocks)
        return out * float("nan") if self.training and targets is not None else out

    monkeypatch.setattr(GPT, "forward", nan_in_training)
    r = run_recipe(shard_files, warmup_steps=0)
    with pytest.raises(TrainingError, match=r"step 1: train loss is nan"):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path), say=quiet,
            checkpoint_dir=str(tmp_path / "ck"))
    assert list((tmp_path / "ck").iterdir()) == [checkpoint_at(tmp_path / "ck", 0)]  # the last good state
    (path,) = tmp_path.glob("*.txt")
    lines = path.read_text().splitlines()
    assert lines[-1].startswith("=== end: failed")
    assert "TrainingError" in lines[-1] and "step 1" in lines[-1]
    log = parse_log(path)
    assert log.status == "failed" and "step 1: train loss is nan" in log.failure
    assert [s for s, _, _ in log.val] == [0]


def test_nan_val_loss_stops_the_run(shard_files, tmp_path, monkeypatch):
    real_forward = GPT.forward

    def nan_in_eval(self, inputs, targets, long_blocks):
        out = real_forward(self, inputs, targets, long_blocks)
        return out if self.training else out * float("nan")

    monkeypatch.setattr(GPT, "forward", nan_in_eval)
    r = run_recipe(shard_files, warmup_steps=0)
    with pytest.raises(TrainingError, match=r"step 0: val loss is nan"):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path), say=quiet)
    (path,) = tmp_path.iterdir()
    assert parse_log(path).status == "failed"


def test_train_files_running_out_mid_run_is_a_training_error(tmp_path, monkeypatch):
    # the length check before the run stops this case first (tests/test_run_data.py); skipped here, as if a shard had
    # shrunk after it, the loop's own guard names the step
    monkeypatch.setattr("speedrun.run_data.check_train_length", lambda *args: None)
    train = tmp_path / "train_000000.bin"
    val = tmp_path / "val_000000.bin"
    tokens = np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:1_000])  # 3 steps of 256 (+1)
    write_shard(train, tokens)
    write_shard(val, np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:600]))
    r = run_recipe((train, val), warmup_steps=0, steps=5, val_every=0)
    with pytest.raises(TrainingError, match="ran out at step 3"):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet)


def test_gpu_only_recipe_refused_on_cpu_unless_forced():
    r = load_recipe("record21")
    if torch.cuda.is_available():  # pragma: no cover
        pytest.skip("a GPU is visible")
    with pytest.raises(TrainingError, match="GPU"):
        make_plan(r)
    plan = make_plan(r, dry_run=True)
    assert plan.device.type == "cuda" and plan.attention == "flex" and plan.fp8_head
    assert make_plan(r, force_device="cpu").device.type == "cpu"


class CompiledStandIn(torch.nn.Module):
    """Stands in for torch.compile's OptimizedModule: holds the model as `_orig_mod` and calls it."""

    def __init__(self, m):
        super().__init__()
        self._orig_mod = m

    def forward(self, *args):
        return self._orig_mod(*args)


# --- multi-token prediction ----------------------------------------------------------------------------------------------
def test_train_step_sets_each_steps_mtp_weights(shard_files, tmp_path):
    """train_step writes its step's weights into the model's buffer before the forward pass (through a compiled
    wrapper's original module too), so the loss it returns is the one with those weights; a short run works."""
    from speedrun.optim.schedule import mtp_weights_at

    r = load_recipe("tiny", {**SMALL, "steps": 10, "mtp_weights": [0.5, 0.25], "mtp_end_frac": 0.5})
    plan = make_plan(r, force_device="cpu")
    assert "multi-token prediction: extra targets +2..+3 weighted 0.5, 0.25 at step 0, falling linearly to 0 at " \
           "step 5 of 10" in plan.describe(r)
    assert "multi-token" not in plan.describe(load_recipe("tiny", SMALL))
    model = build_model(r, plan)
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    optimizers = build_optimizers(model, r)

    for step in (0, 2, 5):
        batch = random_batch(30 + step)
        with torch.no_grad():
            plain = model(*batch[0], 1).item()  # no gradients: the next-token loss alone
        loss = train_step(CompiledStandIn(model), batch, optimizers, step, 1, r, 1).item()
        want = mtp_weights_at(step, r.steps, r.mtp_weights, r.mtp_end_frac)
        torch.testing.assert_close(model.mtp_w, torch.tensor(want))
        assert (loss > plain + 1) if step < 5 else loss == pytest.approx(plain, abs=1e-6), (step, loss, plain)
    result = run(run_recipe(shard_files, mtp_weights=[0.5], steps=4), make_plan(r, force_device="cpu"),
                 log_dir=str(tmp_path), say=quiet)
    assert len(result.train_losses) == 4 and all(math.isfinite(v) for v in result.train_losses)
    assert abs(result.val_losses[0][1] - LN_VOCAB) < 1e-3  # validation scores the next token alone
    # step 1, the untrained model: ln(vocab) per term, the +2 term missing at row ends and document ends only
    assert 1.45 * LN_VOCAB < result.train_losses[0] <= 1.5 * LN_VOCAB


def test_setup_phases_show_the_compiler_import_apart_when_compiling(shard_files, tmp_path):
    """With torch.compile on, importing the compiler (seconds on a fresh machine) is its own phase, not the
    optimisers'. Only the Trainer is built here: nothing is compiled."""
    r = run_recipe(shard_files, compile="on")
    plan = make_plan(r, force_device="cpu")
    assert plan.compile
    trainer = Trainer(r, plan, str(tmp_path / "logs"), None, lambda *a, **k: None, None, str(tmp_path / "ck"), None)
    assert list(trainer.laps.laps) == ["imports+plan", "data", "model", "compiler import", "optimisers", "log"]
    trainer.log.finish(False, "test: set-up only")


def test_ctrl_c_before_the_timed_loop_closes_the_log_saying_so(shard_files, tmp_path, monkeypatch):
    import speedrun.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(speedrun.train, "warmup_and_restore", interrupted)
    r = run_recipe(shard_files, steps=4, val_every=0)
    with pytest.raises(KeyboardInterrupt):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet)
    (log,) = (tmp_path / "logs").iterdir()
    assert log.read_text().splitlines()[-1] == ("=== end: failed: SIGINT: interrupted before the first timed step "
                                                "(compile, warm-up) ===")
