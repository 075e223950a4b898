"""Which checkpoints a run writes and keeps (speedrun/checkpoint_keeper.py): --keep-last's pruning across a run and
its resume, runs sharing a folder, the final weights, and what a killed run's checkpoint write left."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest
import test_checkpoint
import torch
from conftest import checkpoint_at, killed_mid_write
from test_checkpoint import quiet, recipe

import speedrun.train
from speedrun.checkpoint import CheckpointError, load, load_for_resume, resolve
from speedrun.cli import main
from speedrun.plan import make_plan
from speedrun.train import run

shards = test_checkpoint.shards  # the fixture: a small train and val shard


def test_keep_last_keeps_the_newest_periodic_checkpoints_and_the_final_one(shards, tmp_path):
    r = recipe(shards, steps=8, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=2, keep_last=2,
        checkpoint_dir=str(tmp_path / "ck"))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == sorted(
        checkpoint_at(tmp_path / "ck", step).name for step in (4, 6, 8))  # 2 periodic + final
    assert load(checkpoint_at(tmp_path / "ck", 6)).optimizers  # periodic ones are full: resumable


def test_keep_last_on_a_resumed_run_counts_the_first_parts_checkpoints(shards, tmp_path):
    r = recipe(shards, steps=8, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=2,
        checkpoint_dir=str(tmp_path / "ck"))
    first = [checkpoint_at(tmp_path / "ck", step) for step in (2, 4, 6, 8)]
    first[2].unlink(), first[3].unlink()  # the first part as if stopped after step 4
    (tmp_path / "ck" / "ckpt_tiny_otherrun_step000002.pt").write_bytes(b"another run's")  # never touched
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, keep_last=1,
                 resume=load(first[1]))
    second = Path(result.checkpoint_path)
    # one periodic checkpoint of the whole run (the second part's step 6) and the final one; the first part's go
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == sorted(
        [second.name.replace("step000008", "step000006"), second.name, "ckpt_tiny_otherrun_step000002.pt"])


def test_keep_last_on_a_resume_that_branches_off_never_drops_the_first_runs_files(shards, tmp_path):
    """A resume from a checkpoint that its run went past (here a finished run's step 2) starts a branch: the first
    run's later checkpoints and final model are that run's, kept whatever the branch's --keep-last."""
    r = recipe(shards, steps=8, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=2,
        checkpoint_dir=str(tmp_path / "ck"))
    first = sorted(p.name for p in (tmp_path / "ck").iterdir())
    said = []
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=said.append, keep_last=1,
                 resume=load(checkpoint_at(tmp_path / "ck", 2)))
    second = Path(result.checkpoint_path)
    branch = [second.name.replace("step000008", f"step{k:06d}") for k in (6, 8)]  # its newest periodic one + final
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == sorted(first + branch)
    # what --keep-last removes is said where it happens, on the console and in the log
    removed = second.name.replace("step000008", "step000004")
    line = next(s for s in said if s.startswith("checkpoint:") and "step 6," in s)
    assert line.endswith(f"; removed {removed} (--keep-last 1)")
    assert f"; removed {removed} (--keep-last 1)" in Path(result.log_path).read_text()


def test_a_resume_keeps_the_checkpoints_keep_last_as_it_keeps_save_every(shards, tmp_path, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    r = recipe(shards, steps=4, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=1, keep_last=2,
        checkpoint_dir=str(tmp_path / "ck"))
    half = checkpoint_at(tmp_path / "ck", 2)
    assert (load(half).save_every, load(half).keep_last) == (1, 2)

    asked = []
    monkeypatch.setattr(speedrun.train, "run", lambda *a, **kw: asked.append(kw["keep_last"]) or None)
    for extra, want in (([], 2), (["--keep-last", "0"], 0), (["--keep-last", "3"], 3)):
        with contextlib.suppress(Exception):  # the stand-in returns no result: only what it was asked matters
            main(["train", "--resume", str(half), "--device", "cpu", *extra])
        assert asked.pop() == want


def test_runs_sharing_a_folder_keep_their_own_models(shards, tmp_path):
    # two runs of one recipe and step count (a baseline and a change, say): neither overwrites the other's model
    finals = []
    for seed in (1, 2):
        r = recipe(shards, steps=2, val_every=0, seed=seed)
        result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet,
                     save_final=True, checkpoint_dir=str(tmp_path / "ck"))
        finals.append(Path(result.checkpoint_path))
        assert finals[-1].name == f"ckpt_tiny_{Path(result.log_path).stem.rsplit('_', 1)[1]}_step000002.pt"
    assert finals[0] != finals[1] and sorted((tmp_path / "ck").iterdir()) == sorted(finals)
    assert [load(f).recipe.seed for f in finals] == [1, 2]
    assert resolve("latest", tmp_path / "ck") == finals[1]


def test_a_run_removes_the_half_written_checkpoint_a_killed_run_left(shards, tmp_path):
    """SIGKILL (or the out-of-memory killer) in a checkpoint's write leaves its hidden temporary file, as large as a
    checkpoint; the next run in that folder removes it and says so, on the console and in its log."""
    (tmp_path / "ck").mkdir()
    proc, left = killed_mid_write(tmp_path / "ck")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = recipe(shards, steps=2, val_every=0)
    lines = []
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lines.append,
                 save_final=True, checkpoint_dir=str(tmp_path / "ck"))
    said = f"removed {left[0]} (0.0 MiB), a checkpoint that a killed run left half-written"
    assert f"  note: {said}" in lines and said in open(result.log_path).read()
    assert list((tmp_path / "ck").iterdir()) == [Path(result.checkpoint_path)]


def test_final_weights_only_unless_asked_otherwise(shards, tmp_path):
    r = recipe(shards, steps=2, val_every=0)
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_final=True,
                 checkpoint_dir=str(tmp_path / "ck"))
    final = load(result.checkpoint_path)
    assert final.complete and final.optimizers == [] and final.val_losses == result.val_losses
    assert final.model.keys() == result.model.state_dict().keys()
    assert all(torch.equal(final.model[k], v) for k, v in result.model.state_dict().items())
    assert "(weights only)" in open(result.log_path).read()
    with pytest.raises(CheckpointError, match="complete"):
        load_for_resume(result.checkpoint_path)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet,
        checkpoint_dir=str(tmp_path / "none"))  # the library default (and --no-final-checkpoint): none
    assert not (tmp_path / "none").exists()
