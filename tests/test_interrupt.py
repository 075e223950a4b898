"""Ctrl-C during `speedrun train`: the step finishes, a checkpoint is written, the log and the one-line message
name it, the exit code is 130; `--resume PATH` then runs the same run to its last step."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from speedrun.checkpoint import load
from speedrun.checkpoint import write as write_checkpoint
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.errors import Terminated
from speedrun.runlog import parse_log

REPO = Path(__file__).resolve().parents[1]
STEPS = 24
SETS = dict(model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128, seq_len=256, val_seq_len=256,
            window_ramp_tokens=256, batch_tokens=256, steps=STEPS, val_every=8, warmup_steps=1, val_tokens=512,
            sample_tokens=0, train_loop=True)


def speedrun(args, cwd, **kw):
    # PYTHONPATH: this checkout's package, whatever `pip install -e` points at
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    return subprocess.Popen([sys.executable, "-m", "speedrun", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def small_run(tmp_path, extra_args: list[str], **sets) -> list[str]:
    """`speedrun train` arguments for a small CPU run on the demo corpus's first tokens (shards in tmp_path)."""
    train = write_shard(tmp_path / "train_000000.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:12_000]))
    val = write_shard(tmp_path / "val_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:1_000]))
    args = ["train", "--recipe", "tiny", "--device", "cpu", *extra_args]
    for k, v in {**SETS, "train_files": str(train), "val_files": str(val), **sets}.items():
        args += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    return args


def signal_at(proc, pattern: str, signum: int) -> tuple[str, str]:
    """Send `signum` once a line of stdout matches `pattern`; then (all stdout, stderr) when the process ends."""
    seen = []
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            seen.append(line)
            if re.match(pattern, line):
                proc.send_signal(signum)
                break
            assert time.time() < deadline, "".join(seen)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(seen) + out, err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_writes_a_checkpoint_and_resume_finishes(tmp_path):
    args = small_run(tmp_path, ["--print-every", "1", "--save-every", "1000", "--checkpoint-dir", "ckpts",
                                "--log-dir", "logs"])
    proc = speedrun(args, tmp_path)
    out, err = signal_at(proc, r"step +3/", signal.SIGINT)  # training under way: Ctrl-C
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    m = re.fullmatch(r"speedrun: error: SIGINT: interrupted at step (\d+); checkpoint (\S+) \(continue with "
                     r"--resume \2\)", lines[0])
    assert m, lines[0]
    step, path = int(m[1]), tmp_path / m[2]
    assert 3 <= step < STEPS, "the step under way finished; the run did not go on to the end"
    (log_path,) = (tmp_path / "logs").iterdir()
    assert path.is_file() and path.name == f"ckpt_tiny_{log_path.stem.rsplit('_', 1)[1]}_step{step:06d}.pt"
    assert f"SIGINT: stopping after step {step}; writing a checkpoint" in out
    ckpt = load(path)
    assert ckpt.step == step and len(ckpt.train_losses) == step and ckpt.save_every == 1000
    assert ckpt.log_path == str(log_path)  # absolute: a resume may start in another folder
    log_lines = log_path.read_text().splitlines()
    assert log_lines[-1] == f"=== end: failed: interrupted at step {step}; checkpoint {m[2]} ==="
    first = parse_log(log_path)
    assert first.status == "failed" and [s for s, _, _ in first.train_steps] == list(range(1, step + 1))

    # resume: the same command line plus --resume (the recipe repeated is allowed: it is the checkpoint's)
    proc = speedrun(args + ["--resume", m[2]], tmp_path)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    assert f"resumed from {m[2]} at step {step} of {STEPS}" in out
    assert re.search(rf"step +{STEPS}/{STEPS} \| val_loss", out)
    second_log = next(p for p in (tmp_path / "logs").iterdir() if p != log_path)
    second, second_id = parse_log(second_log), second_log.stem.rsplit("_", 1)[1]
    assert second.complete
    assert [s for s, _, _ in second.train_steps] == list(range(step + 1, STEPS + 1))
    assert [s for s, _, _ in first.val + second.val] == [0, 8, 16, 24], "each validation once, on schedule"
    # save_every was kept: saved at the end, named after the resumed run's own log
    final = load(tmp_path / "ckpts" / f"ckpt_tiny_{second_id}_step{STEPS:06d}.pt")
    assert final.complete and final.train_losses[:step] == ckpt.train_losses and len(final.train_losses) == STEPS


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_signal_after_the_last_step_lets_the_run_finish_and_says_so(tmp_path):
    """Step 7's line prints once step 8, the last, is done and past its stop vote; a SIGINT sent then arrives in the
    final validation (40 rows: seconds on a CPU). The run is complete: exit 0, its final checkpoint, and a line in the
    output and the log that the signal came too late to stop it."""
    val = write_shard(tmp_path / "bigval_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:10_241]))
    steps = 8
    args = small_run(tmp_path, ["--print-every", "1", "--checkpoint-dir", "ckpts", "--log-dir", "logs"],
                     steps=steps, val_every=0, val_tokens=10_240, val_files=str(val), sample_tokens=8)
    proc = speedrun(args, tmp_path)
    out, err = signal_at(proc, rf"step +{steps - 1}/{steps} ", signal.SIGINT)
    assert proc.returncode == 0, (out, err)
    note = "SIGINT came as the run was ending: it finished its last step and validation (complete; nothing to resume)"
    assert note in out and re.search(rf"step +{steps}/{steps} \| val_loss", out) and "Traceback" not in err
    # no more work after it: not the sample
    assert "sample:" not in out and "note: no sample (SIGINT came as the run was ending)" in err and "done:" in out
    (log_path,) = (tmp_path / "logs").iterdir()
    assert parse_log(log_path).complete and f"note: {note}" in log_path.read_text()
    (final,) = (tmp_path / "ckpts").iterdir()
    assert load(final).step == steps


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_before_the_timed_loop_ends_the_run_with_its_log_closed(tmp_path):
    # `timeout` on a GPU most often lands in the compile or warm-up: the log ends "failed", the exit code is 143
    proc = speedrun(small_run(tmp_path, ["--log-dir", "logs"], warmup_steps=100_000), tmp_path)
    out, err = signal_at(proc, r"warm-up step 2/", signal.SIGTERM)  # in the warm-up's untimed steps
    assert proc.returncode == 143 and err == "speedrun: terminated (SIGTERM)\n", (out, err)
    (log_path,) = (tmp_path / "logs").iterdir()
    assert log_path.read_text().splitlines()[-1] == ("=== end: failed: SIGTERM: interrupted before the first timed "
                                                     "step (compile, warm-up) ===")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_to_the_launcher_alone_stops_every_rank_with_a_checkpoint(tmp_path):
    # `kill PID` of `speedrun train --nproc 2` (not its process group): the launcher passes SIGTERM on to torchrun,
    # whose ranks stop after a step and checkpoint; nothing trains on without a parent
    args = small_run(tmp_path, ["--nproc", "2", "--print-every", "1", "--checkpoint-dir", "ckpts"], steps=400,
                     batch_tokens=512)
    proc = speedrun(args, tmp_path)
    out, err = signal_at(proc, r"step +3/", signal.SIGTERM)
    assert proc.returncode == 143, (out, err)
    m = re.search(r"speedrun: error: SIGTERM: interrupted at step (\d+); checkpoint (\S+) \(continue with --resume", err)
    assert m, err
    assert load(tmp_path / m[2]).step == int(m[1]) < 400
    assert "a rank failed" not in err
    assert "Traceback" not in err and "SignalException" not in err  # torchrun's own, on the signal passed on


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["sigterm", "ctrl_c", "sigterm_group"])
def test_a_signal_during_tokenize_removes_its_temporary_folder(tmp_path, how):
    # sigterm: `kill PID`, one process; ctrl_c: SIGINT to the whole process group, as a terminal sends it, which
    # reaches the pool's workers too (they ignore it: no traceback from each of them); sigterm_group: SIGTERM to the
    # whole group (as a service manager may send it), workers included: none may die holding a queue lock
    docs = tmp_path / "docs.jsonl"
    line = '{"text": "' + "a few words of text to tokenize, over and over. " * 40 + '"}\n'
    docs.write_text(line * 40_000)  # ~80 MB: tokenizing takes long enough to be stopped half-way
    out = tmp_path / "out"
    workers = "1" if how == "sigterm" else "2"
    proc = speedrun(["data", "tokenize", str(docs), "--out", str(out), "--workers", workers], tmp_path,
                    start_new_session=True)
    deadline = time.time() + 60
    while not (out.is_dir() and any(out.iterdir())) and time.time() < deadline:
        time.sleep(0.05)  # the temporary folder exists: tokenizing has begun
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT if how == "ctrl_c" else signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    if how != "ctrl_c":
        assert proc.returncode == 143 and err.endswith("speedrun: terminated (SIGTERM)\n"), (stdout, err)
    else:
        assert proc.returncode == 130 and err == "speedrun: interrupted\n", (stdout, err)
    assert not out.exists(), list(out.rglob("*"))  # the folder it made, and its temporary folder, are gone


def test_an_ignored_sigint_stays_ignored_in_the_timed_loop():
    """A script's background job starts with SIGINT ignored (the terminal's Ctrl-C is the script's): the loop keeps
    it so, as the setup before it does, and still stops on SIGTERM."""
    from speedrun.interrupt import StopRequest

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopRequest() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    with StopRequest() as stop:  # a foreground run: Ctrl-C asks the loop to stop
        assert signal.getsignal(signal.SIGINT) == stop._handle


@pytest.mark.parametrize("raised, name", [(KeyboardInterrupt, "SIGINT"), (Terminated, "SIGTERM")])
def test_a_signal_in_the_sample_itself_leaves_the_run_complete(tmp_path, monkeypatch, capsys, raised, name):
    # the signal's exception raised inside the sample's generation: the run is complete, exit 0 (a subprocess test
    # that sent the signal when the final checkpoint's line appeared was racy: part 59)
    import speedrun.evals.sample as sample
    from speedrun.cli import main

    def interrupted(*args, **kwargs):
        raise raised()
    monkeypatch.setattr(sample, "generate", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(small_run(tmp_path, ["--log-dir", "logs", "--no-final-checkpoint"], steps=2, val_every=0,
                          sample_tokens=8)) == 0
    out, err = capsys.readouterr()
    assert f"note: no sample ({name} came during it; the run is complete)" in err and "done: val_loss" in out


def test_a_signal_while_the_metrics_flush_leaves_the_run_complete(tmp_path, monkeypatch, capsys):
    # wandb's finish takes seconds after the log's end line: a Ctrl-C then is a late one, not an interrupted run
    from speedrun.cli import main
    from speedrun.metrics import Metrics

    def close_with_a_signal(self):
        os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(Metrics, "close", close_with_a_signal)
    monkeypatch.setattr("speedrun.metrics.open_metrics", lambda *a, **k: Metrics())
    monkeypatch.chdir(tmp_path)
    assert main(small_run(tmp_path, ["--log-dir", "logs", "--no-final-checkpoint", "--tensorboard", "tb"], steps=2,
                          val_every=0, sample_tokens=8)) == 0
    out, err = capsys.readouterr()
    assert "note: no sample (SIGINT came as the run was ending)" in err and "done: val_loss" in out


@pytest.mark.parametrize("where", ["after_run", "in_shutdown"])
def test_a_signal_between_the_log_end_and_the_last_line_leaves_the_run_complete(tmp_path, monkeypatch, capsys, where):
    # the loop's handlers are held until `train` returns, so there is no moment after the log's end line where a
    # Ctrl-C ends a complete run with exit 130 (part 59's race: a signal as the final checkpoint's line appeared)
    import speedrun.distributed
    import speedrun.train
    from speedrun.cli import main

    real_run, real_shutdown = speedrun.train.run, speedrun.distributed.shutdown_distributed

    def run_then_signal(*args, **kwargs):
        result = real_run(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    def shutdown_with_a_signal():
        os.kill(os.getpid(), signal.SIGINT)
        real_shutdown()
    if where == "after_run":
        monkeypatch.setattr(speedrun.train, "run", run_then_signal)
    else:
        monkeypatch.setattr(speedrun.distributed, "shutdown_distributed", shutdown_with_a_signal)
    monkeypatch.chdir(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    assert main(small_run(tmp_path, ["--log-dir", "logs", "--no-final-checkpoint"], steps=2, val_every=0,
                          sample_tokens=8)) == 0
    out, err = capsys.readouterr()
    assert "note: no sample (SIGINT came as the run was ending)" in err and "done: val_loss" in out, (out, err)
    assert signal.getsignal(signal.SIGINT) is before  # the held handlers are given back


@pytest.mark.parametrize("at", ["final_validation", "mid_step"])
def test_a_second_ctrl_c_in_the_timed_loop_says_where_and_what_is_left(tmp_path, monkeypatch, capsys, at):
    # a Ctrl-C more than the grace time after the first stops the run at once (StopRequest raises
    # KeyboardInterrupt), without the checkpoint the first writes: the line names what it cut short and the last
    # checkpoint (it said only "interrupted")
    import speedrun.train
    from speedrun.cli import main

    real_evaluate, real_step, calls = speedrun.train.evaluate, speedrun.train.train_step, []

    def evaluate(*args, **kwargs):
        calls.append("val")
        if at == "final_validation" and len(calls) == 5:  # validations at steps 0, 2, 4, 6 and 8 (the last)
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    def train_step(runner, batches, optimizers, step, *args):
        if at == "mid_step" and step == 6:
            raise KeyboardInterrupt
        return real_step(runner, batches, optimizers, step, *args)
    monkeypatch.setattr(speedrun.train, "evaluate", evaluate)
    monkeypatch.setattr(speedrun.train, "train_step", train_step)
    monkeypatch.chdir(tmp_path)
    # a validation after the last checkpoint (step 6's) must not hide it
    rc = main(small_run(tmp_path, ["--log-dir", "logs", "--checkpoint-dir", "ckpts", "--save-every", "4"], steps=8,
                        val_every=2))
    out, err = capsys.readouterr()
    where = "step 8's validation" if at == "final_validation" else "step 7"
    reason = (f"SIGINT: interrupted at once in the timed loop, in {where}; no checkpoint of this stop (the last: "
              f"{next((tmp_path / 'ckpts').iterdir()).relative_to(tmp_path)})")
    assert rc == 130 and err == f"speedrun: interrupted: {reason}\n", (out, err)
    (log_path,) = (tmp_path / "logs").iterdir()
    assert log_path.read_text().splitlines()[-1] == f"=== end: failed: {reason} ==="


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_last_line_keeps_a_complete_runs_exit_code(tmp_path, signum):
    # the interpreter takes most of a second to exit after `done:` (torch's teardown); a signal then made a complete
    # run's exit code 130 / 143 (or a death by the signal), which a script would read as an interrupted run
    proc = speedrun(small_run(tmp_path, ["--log-dir", "logs", "--no-final-checkpoint"], steps=2, val_every=0),
                    tmp_path)
    for line in proc.stdout:
        if line.startswith("done: "):
            time.sleep(0.15)  # past main's return, into the teardown (0.7 s here)
            proc.send_signal(signum)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == "", (out, err)


def test_a_ctrl_c_inside_the_write_is_the_interrupt_not_torchs_zip_error(tmp_path):
    # a second Ctrl-C while a checkpoint is written raises KeyboardInterrupt inside torch.save, whose zip writer then
    # fails on the way out ("unexpected pos"): the run must stop as interrupted (exit 130), not with that traceback.
    # One interrupt, raised by the first timer tick that finds torch.save running: a KeyboardInterrupt every tick
    # (as before) sometimes landed in the few bytecodes between the write's failure and its cleanup, on a loaded
    # machine, and left the temporary file (once in each of three runs of up to 30 writes beside a busy loop on each
    # core), a case no user's keys make
    raised = []

    def interrupt(signum, frame):
        inside = frame
        while inside is not None and not inside.f_code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            inside = inside.f_back
        if inside is not None and not raised:
            raised.append(frame.f_code.co_name)
            raise KeyboardInterrupt
    snapshot = {f"t{i}": torch.zeros(5_000_000) for i in range(10)}
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)  # a tick every 10 ms: no 200 MB write is done between two
    try:
        with pytest.raises(KeyboardInterrupt):
            write_checkpoint(tmp_path / "ckpt.pt", snapshot)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert list(tmp_path.iterdir()) == [], "nothing half-written is left"


def test_a_signal_during_a_periodic_checkpoint_stops_on_it(tmp_path, monkeypatch, capsys):
    # it was noted and acted on one step later, after one more full checkpoint (seconds and GBs for a GPU model)
    from speedrun.checkpoint_keeper import CheckpointKeeper
    from speedrun.cli import main

    real_save = CheckpointKeeper.save

    def save_with_a_signal(self, step, weights_only=False):
        path = real_save(self, step, weights_only)
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if during the write: the loop's handler notes it
        return path
    monkeypatch.setattr(CheckpointKeeper, "save", save_with_a_signal)
    monkeypatch.chdir(tmp_path)
    assert main(small_run(tmp_path, ["--log-dir", "logs", "--checkpoint-dir", "ckpts", "--save-every", "2"],
                          steps=8)) == 130
    out, err = capsys.readouterr()
    (ckpt,) = (tmp_path / "ckpts").iterdir()
    assert "SIGINT came during the checkpoint: stopping on it" in out
    assert f"SIGINT: interrupted at step 2; checkpoint ckpts/{ckpt.name}" in err and load(ckpt).step == 2


@pytest.mark.parametrize("raised, code, line", [(KeyboardInterrupt, 130, "speedrun: interrupted"),
                                                (Terminated, 143, "speedrun: terminated (SIGTERM)")])
@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_signal_before_the_loop_under_torchrun_is_one_line_from_rank_0(monkeypatch, capsys, raised, code, line, rank):
    """torchrun passes a SIGTERM on to every rank, as a terminal's Ctrl-C reaches every rank: rank 0 alone says so
    (each rank printed "speedrun: terminated (SIGTERM)", N identical lines naming no rank)."""
    from speedrun import cli

    for k, v in {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(k, v)

    def stopped_in_setup(args):
        raise raised

    monkeypatch.setattr(cli, "train_command", stopped_in_setup)
    assert cli.main(["train", "--recipe", "tiny", "--device", "cpu"]) == code
    assert capsys.readouterr().err.splitlines() == ([line] if rank == "0" else [])


@pytest.mark.parametrize("in_front, passed_on", [(False, [signal.SIGINT]), (True, [])])
def test_sigint_to_the_launcher_alone_is_passed_on_to_torchrun(monkeypatch, capsys, in_front, passed_on):
    """`kill -INT PID` of `speedrun train --nproc 2` (no terminal's Ctrl-C, which reaches torchrun too) was only
    noted: the ranks trained on to the end and the launcher exited 0. It is passed on, as SIGTERM is."""
    from speedrun import launch

    sent = []

    class Torchrun:  # torchrun that the signal reaches only through the launcher, without starting one
        def __init__(self, cmd, env):
            pass

        def send_signal(self, signum):
            sent.append(signum)

        def wait(self):
            os.kill(os.getpid(), signal.SIGINT)  # the launcher's handler runs here
            return 130 if sent else 0

    monkeypatch.setattr(subprocess, "Popen", Torchrun)
    monkeypatch.setattr(launch, "_in_terminals_front", lambda: in_front)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in `speedrun`, not ignored
    try:
        assert launch.launch_torchrun(2, ["train"]) == (130 if passed_on else 0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent == passed_on


def test_a_signal_to_the_launcher_as_a_complete_run_exits_keeps_its_0(monkeypatch, capsys):
    """Ctrl-C after the last line of a --nproc 2 run: the ranks kept their 0 (cli.entry), but torchrun, which the
    signal reached too, ended with 130, and so did the launcher. Rank 0's own code now answers for a complete run."""
    from speedrun import launch

    files = []

    class Torchrun:  # rank 0 finished the run; the signal reached torchrun as it exited
        def __init__(self, cmd, env):
            files.append(env[launch.EXIT_FILE_ENV])

        def send_signal(self, signum):
            pass

        def wait(self):
            monkeypatch.setenv(launch.EXIT_FILE_ENV, files[0])
            monkeypatch.setenv("RANK", "0")
            launch.note_exit_code(0)
            os.kill(os.getpid(), signal.SIGTERM)
            return 143

    monkeypatch.setattr(subprocess, "Popen", Torchrun)
    assert launch.launch_torchrun(2, ["train"]) == 0
    assert not os.path.exists(files[0])
