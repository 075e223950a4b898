"""Where a resumed run writes its log: beside the first part's log wherever the resume is started from, so that
`speedrun stats` on that folder sees every part; `logs` beside the checkpoint's folder where the first part's log is
not found (a checkpoint folder copied to another machine); older checkpoints' relative log paths still found."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SMALL as SMALL_MODEL
from conftest import checkpoint_at

from speedrun.checkpoint import first_log, load, log_folder
from speedrun.cli import main
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.runlog import parse_log
from speedrun.stats import load_runs
from speedrun.train import run

SMALL = dict(SMALL_MODEL, steps=4, val_every=0, warmup_steps=1, val_tokens=512, train_loop=False, sample_tokens=0)
LOG = "20260101-000000_tiny_ab12cd34.txt"


@pytest.fixture
def first_part(tmp_path, monkeypatch):
    """The repro: in x/, `speedrun train ... --log-dir D/logs --checkpoint-dir D/ck` (relative), stopped after step 2
    (its later checkpoint removed); the resume then starts in x/other. Returns (x, the step-2 checkpoint)."""
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    x = tmp_path / "x"
    train = write_shard(x / "train_000000.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:2_000]))
    val = write_shard(x / "val_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:1_000]))
    r = load_recipe("tiny", {**SMALL, "train_files": str(train), "val_files": str(val)})
    monkeypatch.chdir(x)
    run(r, make_plan(r, force_device="cpu"), log_dir="D/logs", checkpoint_dir="D/ck", save_every=2,
        say=lambda *a, **k: None)
    for later in (x / "D" / "ck").glob("*_step000004.pt"):
        later.unlink()
    (x / "other").mkdir()
    monkeypatch.chdir(x / "other")
    return x, checkpoint_at(x / "D" / "ck", 2)


def test_a_resume_started_elsewhere_writes_its_log_beside_the_first_parts(first_part, capsys):
    x, half = first_part
    (first,) = (x / "D" / "logs").iterdir()
    assert main(["train", "--resume", str(half), "--device", "cpu"]) == 0
    assert not (x / "other" / "D").exists()  # not a new D/logs under the folder the resume started in
    (second,) = set((x / "D" / "logs").iterdir()) - {first}
    note = parse_log(second)
    assert note.resumed_at == 2 and Path(note.first_part) == first  # a path that exists from anywhere
    assert "not found" not in capsys.readouterr().out
    runs = load_runs([str(x / "D" / "logs")])  # stats on the folder: one run, resumed
    assert {r.path: r.first_part and r.first_part.path for r in runs}[second] == first


def test_a_checkpoint_folder_copied_without_its_logs_writes_beside_it_and_says_so(first_part, tmp_path, capsys):
    x, half = first_part
    copy = tmp_path / "machine2" / "run" / "ck"
    shutil.copytree(x / "D" / "ck", copy)
    shutil.rmtree(x / "D" / "logs")  # the first part's log is nowhere on this machine
    assert main(["train", "--resume", str(copy / half.name), "--device", "cpu"]) == 0
    (second,) = (tmp_path / "machine2" / "run" / "logs").iterdir()  # `logs` beside the checkpoint's folder
    assert not (x / "other" / "logs").exists() and not (x / "D" / "logs").exists()
    out = capsys.readouterr().out
    assert (f"training so far); the first part's log {x / 'D' / 'logs'}/" in out and
            f" is not found here (copied without it?): this part's log is {second}\n" in out)
    assert parse_log(second).resumed_at == 2


def test_the_first_parts_log_is_found_from_anywhere(tmp_path, monkeypatch):
    x = tmp_path / "x"
    (x / "D" / "logs").mkdir(parents=True)
    (x / "D" / "logs" / LOG).touch()
    (x / "other").mkdir()
    monkeypatch.chdir(x / "other")
    # an older checkpoint's path, relative to the folder its run started in (x): found from the checkpoint's folder up
    old = SimpleNamespace(path=x / "D" / "ck" / "ckpt_tiny_ab12cd34_step000002.pt", log_path=f"D/logs/{LOG}")
    assert first_log(old) == x / "D" / "logs" / LOG and log_folder(None, old) == x / "D" / "logs"
    monkeypatch.chdir(x)  # ... and from the folder it started in, as before
    assert first_log(old).resolve() == (x / "D" / "logs" / LOG).resolve()
    assert log_folder(None, old).resolve() == (x / "D" / "logs").resolve()
    # an older checkpoint whose log folder is not beside its checkpoints: found by the relative path from here
    apart = SimpleNamespace(path=x / "C" / "ck" / old.path.name, log_path=f"D/logs/{LOG}")
    assert first_log(apart) == Path("D/logs") / LOG
    # a run folder copied whole to another place: the recorded (absolute) path is not there, its `logs` beside is
    moved = SimpleNamespace(path=tmp_path / "y" / "ck" / old.path.name, log_path=f"/nowhere/D/logs/{LOG}")
    assert log_folder(None, moved) == tmp_path / "y" / "logs" and first_log(moved) is None
    (tmp_path / "y" / "logs").mkdir(parents=True)
    (tmp_path / "y" / "logs" / LOG).touch()
    assert first_log(moved) == tmp_path / "y" / "logs" / LOG
    # --log-dir wins; no recorded log (a library run's checkpoint): `logs` here
    assert log_folder("elsewhere", moved) == Path("elsewhere")
    assert log_folder(None, SimpleNamespace(path=moved.path, log_path=None)) == log_folder(None, None) == Path("logs")


def test_new_checkpoints_record_their_log_absolute(first_part):
    x, half = first_part
    (first,) = (x / "D" / "logs").iterdir()
    assert load(half).log_path == str(first)  # the run gave D/logs, relative to x


def test_a_run_folder_copied_whole_resumes_into_the_copy(first_part):
    # copying a run folder to branch it: the resume's log goes beside the copy's checkpoints (it went to the folder
    # the copy came from, whose log the checkpoint records), so `stats` on the copy sees its run whole
    x, half = first_part
    shutil.copytree(x / "D", x / "E")
    before = set((x / "D" / "logs").iterdir())
    assert main(["train", "--resume", str(x / "E" / "ck" / half.name), "--device", "cpu"]) == 0
    assert set((x / "D" / "logs").iterdir()) == before
    assert len(list((x / "E" / "logs").iterdir())) == 2
    assert all(r.log.status == "complete" for r in load_runs([str(x / "E" / "logs")]))
