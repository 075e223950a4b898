"""Failures during training: NaN/inf stops with the step and a checkpoint of the last good state; running out
of memory names the setting to change; a dying rank brings the others down instead of hanging."""

import errno
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import speedrun.train as train_mod
from speedrun import checkpoint as ckpt_mod
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.errors import TrainingError
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.runlog import parse_log
from speedrun.train import out_of_memory_advice, run

SMALL = {"model_dim": 64, "head_dim": 32, "num_heads": 2, "mlp_hidden": 128, "seq_len": 256, "val_seq_len": 256,
         "window_ramp_tokens": 256, "batch_tokens": 256, "val_tokens": 512, "warmup_steps": 0, "sample_tokens": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("fail")
    train = write_shard(d / "train.bin", np.asarray(read_shard(DEMO_DIR / "demo_train_000000.bin")[:20_000]))
    val = write_shard(d / "val.bin", np.asarray(read_shard(DEMO_DIR / "demo_val_000000.bin")[:2_000]))
    return str(train), str(val)


def small(data, **extra):
    return load_recipe("tiny", {**SMALL, "train_files": data[0], "val_files": data[1], **extra})


def poison_from(monkeypatch, first_bad_step: int):
    """Make the train loss NaN from optimiser step `first_bad_step` on (0-based), as a diverging run would."""
    real = train_mod.train_step

    def step(model, batches, optimizers, step, window, r, world_size):
        loss = real(model, batches, optimizers, step, window, r, world_size)
        if step >= first_bad_step:
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))
            return loss * float("nan")
        return loss

    monkeypatch.setattr(train_mod, "train_step", step)


def test_nan_loss_stops_with_step_and_last_good_checkpoint(data, tmp_path, monkeypatch):
    poison_from(monkeypatch, 7)  # steps 1..7 fine, step 8's loss is NaN; validations at 0, 3, 6
    r = small(data, steps=12, val_every=3)
    with pytest.raises(TrainingError) as err:
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a: None,
            checkpoint_dir=str(tmp_path / "ck"))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("step 8: train loss is nan")
    assert "last good state (step 6)" in msg
    path = Path(msg.split("checkpoint ")[1].split(" ")[0])
    assert path.exists() and path.parent == tmp_path / "ck"
    ck = ckpt_mod.load(path)
    assert ck.step == 6 and len(ck.train_losses) == 6 and all(np.isfinite(ck.train_losses))
    assert all(torch.isfinite(v).all() for v in ck.model.values() if v.is_floating_point())
    (log,) = (tmp_path / "logs").glob("*.txt")
    parsed = parse_log(log)
    assert parsed.status == "failed" and "step 8: train loss is nan" in parsed.failure


def test_nan_before_any_validation_says_no_state_was_kept(data, tmp_path, monkeypatch):
    poison_from(monkeypatch, 0)
    r = small(data, steps=6, val_every=0)
    with pytest.raises(TrainingError, match=r"step 1: train loss is nan; stopping: no good state was kept"):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a: None,
            checkpoint_dir=str(tmp_path / "ck"))
    assert not (tmp_path / "ck").exists()


def test_out_of_memory_names_the_setting_to_change(data, tmp_path, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.8 GiB")

    monkeypatch.setattr(train_mod, "train_step", oom)
    r = small(data, steps=4, val_every=0, batch_tokens=512)
    with pytest.raises(TrainingError) as err:
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a: None)
    msg = str(err.value)
    assert "\n" not in msg and "out of GPU memory" in msg
    assert "--set seq_len=128" not in msg  # 128 < the final 256-token window: not a valid suggestion
    assert "seq_len" in msg and "val_seq_len" in msg
    (log,) = (tmp_path / "logs").glob("*.txt")
    assert parse_log(log).failure.startswith("out of memory")


def test_out_of_memory_advice_for_record21():
    r = load_recipe("record21")
    plan = make_plan(r, dry_run=True)
    msg = out_of_memory_advice(r, plan)
    assert "--set seq_len=24576" in msg and "16 accumulation steps" in msg


WORKER = '''
import sys, torch
import speedrun.train as t
from speedrun.cli import main
real = t.train_step
def dying(model, batches, optimizers, step, *a):
    if step == 2 and torch.distributed.get_rank() == 1:
        raise RuntimeError("rank 1 died on purpose")
    return real(model, batches, optimizers, step, *a)
t.train_step = dying
sys.exit(main(sys.argv[1:]))
'''


def test_a_dying_rank_brings_the_others_down(data, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    args = ["train", "--recipe", "tiny", "--log-dir", str(tmp_path / "logs")]
    for k, v in {**SMALL, "batch_tokens": 512, "steps": 20, "val_every": 0, "train_files": data[0],
                 "val_files": data[1]}.items():
        args += ["--set", f"{k}={v}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker), *args], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert time.time() - t0 < 200  # not a hang until a collective times out
    assert "rank 1 died on purpose" in proc.stderr
    (log,) = (tmp_path / "logs").glob("*.txt")  # rank 0's log is not mistaken for a result
    assert parse_log(log).status in ("incomplete", "failed")


NAN_WORKER = '''
import sys
import speedrun.train as t
from speedrun.cli import main
real = t.train_step
def diverging(model, batches, optimizers, step, *a):
    loss = real(model, batches, optimizers, step, *a)  # all-reduced: every rank holds the same NaN
    return loss * float("nan") if step >= 2 else loss
t.train_step = diverging
sys.exit(main(sys.argv[1:]))
'''


def test_a_loss_every_rank_shares_stops_them_with_one_line(data, tmp_path):
    """A NaN all-reduced loss stops every rank at once: rank 0 alone says so (one line, as a 1-rank run prints),
    not one line a rank."""
    worker = tmp_path / "worker.py"
    worker.write_text(NAN_WORKER)
    args = ["train", "--recipe", "tiny", "--log-dir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "ck")]
    for k, v in {**SMALL, "batch_tokens": 512, "steps": 6, "val_every": 0, "train_files": data[0],
                 "val_files": data[1]}.items():
        args += ["--set", f"{k}={v}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker), *args], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("speedrun: error:")]
    assert errors == ["speedrun: error: step 3: train loss is nan; stopping: no good state was kept (none before the "
                      "first validation) (lower the learning rates or check the data)"], proc.stderr[-2000:]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_an_error_of_one_ranks_names_the_rank(monkeypatch, capsys, rank):
    """Under torchrun by hand every rank checks its arguments; each names itself, as ranks may fail apart."""
    from speedrun.cli import main

    for k, v in {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(k, v)
    assert main(["train", "--recipe", "tiny", "--device", "cpu", "--set", "no_such_key=1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"speedrun: error: rank {rank}: ") and "no_such_key" in line


def test_launcher_reports_a_failed_rank(monkeypatch, capsys):
    from speedrun import launch

    started = []

    class Torchrun:  # torchrun whose rank failed, without starting one
        def __init__(self, cmd, env):
            started.append((cmd, env))

        def wait(self):
            return 1

    monkeypatch.setattr(subprocess, "Popen", Torchrun)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("speedrun.launch.usable_cores", lambda: 8)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/speedrun", "train", "--nproc", "2", "--set", "train_files=d/*.bin"])
    assert launch.launch_torchrun(2, ["train"]) == 1
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["speedrun: error: a rank failed (torchrun exit code 1); see the messages above"]
    # the ranks share the cores, so that torchrun neither sets 1 thread each nor prints its banner about it
    ((cmd, env),) = started
    assert env["OMP_NUM_THREADS"] == "4" and cmd[-2:] == ["speedrun", "train"]
    # the ranks' argv lacks --nproc: their logs take the command as typed from here
    assert env["SPEEDRUN_COMMAND"] == "speedrun train --nproc 2 --set 'train_files=d/*.bin'"
    assert out.startswith("speedrun: launching 2 ranks: OMP_NUM_THREADS=4 torchrun --standalone --nproc_per_node=2")


def test_launcher_keeps_the_users_thread_count(monkeypatch, capsys):
    from speedrun import launch

    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, env: started.append(env) or type("P", (), {"wait": lambda s: 0})())
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launch.launch_torchrun(2, ["train"]) == 0
    assert started[0]["OMP_NUM_THREADS"] == "3" and "OMP_NUM_THREADS=3 torchrun" in capsys.readouterr().out


# --- outputs that cannot be written, data that would mislead: refused before any work ------------------------------------
def _train_cli(data, tmp_path, *extra):
    from speedrun.cli import main

    return main(["train", "--recipe", "tiny", "--device", "cpu", *[a for k, v in SMALL.items() for a in
                 ("--set", f"{k}={v}")], "--set", f"train_files={data[0]}", "--set", f"val_files={data[1]}",
                 "--set", "steps=2", *extra])


@pytest.mark.parametrize("flag", ["--log-dir", "--checkpoint-dir"])
def test_an_output_folder_that_is_a_file_is_refused_up_front(data, tmp_path, capsys, flag):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    folders = {"--log-dir": str(tmp_path / "logs"), "--checkpoint-dir": str(tmp_path / "ck"), flag: str(blocker / "sub")}
    code = _train_cli(data, tmp_path, "--save-every", "1", *[a for item in folders.items() for a in item])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"speedrun: error: {flag} {blocker / 'sub'}: {blocker} is a file, not a folder"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ck").exists()  # no log, no checkpoint
    assert blocker.read_text() == "a file"


def test_train_and_val_files_that_overlap_are_refused(data, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    for src, name in ((data[0], "mine_train_000000.bin"), (data[1], "mine_val_000000.bin")):
        (folder / name).write_bytes(open(src, "rb").read())
    from speedrun.cli import main

    code = main(["train", "--recipe", "tiny", "--device", "cpu", "--log-dir", str(tmp_path / "logs"),
                 "--set", f"train_files={folder / 'mine_*.bin'}", "--set", f"val_files={folder / 'mine_val_000000.bin'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "train_files and val_files share" in err and "mine_val_000000.bin" in err and "trained on" in err
    assert not (tmp_path / "logs").exists()


def test_a_full_disk_is_one_line_and_the_log_ends_failed(data, tmp_path, capsys, monkeypatch):
    from speedrun.cli import main

    def full(path, snap):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(ckpt_mod, "write", full)
    args = ["train", "--recipe", "tiny", "--log-dir", str(tmp_path / "logs"), "--checkpoint-dir", str(tmp_path / "c"),
            "--save-every", "2"]
    for k, v in {**SMALL, "steps": 4, "train_files": data[0], "val_files": data[1]}.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 1
    err = capsys.readouterr().err
    (log,) = (tmp_path / "logs").iterdir()
    refused = tmp_path / "c" / f"ckpt_tiny_{log.stem.rsplit('_', 1)[1]}_step000002.pt"
    assert err == f"speedrun: error: {refused}: No space left on device\n"
    assert parse_log(log).status == "failed"
    assert log.read_text().rstrip().endswith(f"No space left on device: {str(refused)!r} ===")
    # an OSError that names no file is no user's problem: its traceback stays
    monkeypatch.setattr(ckpt_mod, "write", lambda path, snap: (_ for _ in ()).throw(OSError("a bug")))
    with pytest.raises(OSError, match="a bug"):
        main(args)


def test_a_wider_model_with_more_heads_trains(data, tmp_path):
    """nanoGPT users change width and heads freely: head_dim and mlp_hidden follow (it once crashed in warm-up)."""
    r = load_recipe("tiny", {**{k: v for k, v in SMALL.items() if k not in ("head_dim", "mlp_hidden")},
                             "model_dim": 96, "num_heads": 3, "train_files": data[0], "val_files": data[1],
                             "steps": 2, "warmup_steps": 1})
    assert (r.head_dim, r.mlp_hidden) == (32, 384)
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path), say=lambda *a: None)
    assert len(result.train_losses) == 2 and all(math.isfinite(v) for v in result.train_losses)


def test_torchrun_under_the_launcher_ends_a_failed_rank_without_its_traceback(monkeypatch, capsys):
    """A rank's error is one line; torchrun's ChildFailedError (a traceback and a report) followed it under
    --nproc N, before the launcher's own line. Now torchrun exits 1, as it did, with no traceback."""
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from speedrun import launch

    def failed():
        raise ChildFailedError("speedrun", {0: ProcessFailure(local_rank=0, pid=1, exitcode=2, error_file="")})

    monkeypatch.setattr(torch.distributed.run, "main", failed)
    assert launch.torchrun_main() == 1
    out, err = capsys.readouterr()
    assert out == err == ""


def test_torchrun_under_the_launcher_names_a_rank_a_signal_killed(monkeypatch, capsys):
    """A rank killed by a signal (the out-of-memory killer's SIGKILL) prints nothing itself: torchrun's report was
    the only word of it, so its one line stays."""
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from speedrun import launch

    def failed():
        raise ChildFailedError("speedrun", {0: ProcessFailure(local_rank=0, pid=7, exitcode=2, error_file=""),
                                            1: ProcessFailure(local_rank=1, pid=8, exitcode=-9, error_file="")})

    monkeypatch.setattr(torch.distributed.run, "main", failed)
    assert launch.torchrun_main() == 1
    assert capsys.readouterr().err.splitlines() == ["speedrun: error: rank 1 (pid 8) was killed by SIGKILL"]
