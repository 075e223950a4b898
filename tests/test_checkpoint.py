"""Checkpoints: atomic writes, contents, `latest`, clear errors, and exact resume (2N straight == N + resume + N)."""

from __future__ import annotations

import os
import random
import re
import signal
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SMALL, checkpoint_at

import speedrun.checkpoint as ckpt_mod
import speedrun.train
from speedrun.build import build_model, build_optimizers
from speedrun.checkpoint import CheckpointError, checkpoint_folder, load, load_for_resume, log_folder, resolve, save
from speedrun.cli import main
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.data.stream import StreamPosition
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.runlog import parse_log
from speedrun.step import train_step
from speedrun.train import run


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt_shards")
    train = write_shard(d / "train_000000.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:20_000]))
    val = write_shard(d / "val_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:2_000]))
    return train, val


def recipe(shards, **extra):
    train, val = shards
    return load_recipe("tiny", {**SMALL, "steps": 6, "val_every": 3, "warmup_steps": 1, "val_tokens": 512,
                                "train_files": str(train), "val_files": str(val), "train_loop": False,
                                "sample_tokens": 0, **extra})


@pytest.fixture(scope="module")
def state(shards):
    """A recipe, model and optimisers with real state (one step taken), as a checkpoint holds them."""
    r = recipe(shards)
    model = build_model(r, make_plan(r, force_device="cpu"))
    opts = build_optimizers(model, r)
    t = torch.randint(0, 50257, (257,), generator=torch.Generator().manual_seed(0))
    train_step(model, [(t[:-1].int(), t[1:].long())], opts, 0, 1, r, 1)
    return r, model, opts


def save_small(path, r, model, opts, step=1, **extra):
    kw = dict(model=model, optimizers=opts, step=step, stream_position=StreamPosition(0, 256 * step, 0), recipe=r,
              log_path="logs/x.txt", train_time_ms=12.5, train_losses=[10.8] * step, val_losses=[(0, 10.83)])
    return save(path, **{**kw, **extra})


# --- contents and atomic writes -------------------------------------------------------------------------------
def test_save_and_load_round_trip(state, tmp_path):
    r, model, opts = state
    torch.manual_seed(5)
    np.random.seed(6)
    random.seed(7)
    path = save_small(tmp_path / "ckpt_tiny_step000001.pt", r, model, opts, stream_position=StreamPosition(0, 256, 2))
    want = (torch.rand(3), np.random.rand(3), random.random())
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file is left behind"

    c = load(path)
    assert c.path == path and c.step == 1 and c.recipe == r and not c.complete
    assert c.stream == dict(shard=0, offset=256, passes=2)
    assert c.log_path == os.path.abspath("logs/x.txt") and c.train_time_ms == 12.5  # a resume may start elsewhere
    assert c.train_losses == [10.8] and c.val_losses == [(0, 10.83)]
    assert c.model.keys() == model.state_dict().keys()
    assert all(torch.equal(c.model[k], v) for k, v in model.state_dict().items())
    for opt, state in zip(opts, c.optimizers):
        mine = opt.state_dict()
        assert len(mine["state"]) == len(state["state"]) > 0
        for i, s in mine["state"].items():
            assert all(torch.equal(s[k], state["state"][i][k]) for k in s)
        assert mine["param_groups"] == state["param_groups"]
    # every RNG comes back to where it was when saved
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt_mod.restore_rng(c.rng)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]


def test_failed_write_keeps_the_previous_checkpoint(state, tmp_path, monkeypatch):
    r, model, opts = state
    path = save_small(tmp_path / "ckpt_tiny_step000001.pt", r, model, opts)
    before = path.read_bytes()

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_small(path, r, model, opts, step=2)
    assert path.read_bytes() == before, "the old checkpoint is untouched"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "the temporary file is removed"
    monkeypatch.undo()
    assert load(path).step == 1



# --- latest --------------------------------------------------------------------------------------------------
def test_latest_is_the_newest_file_then_the_highest_step(tmp_path):
    def touch(name, mtime):
        p = tmp_path / name
        p.write_bytes(b"x")
        os.utime(p, ns=(mtime, mtime))
        return p

    touch("ckpt_tiny_0a1b2c3d_step000120.pt", 1_000)  # a finished older run of the same recipe
    newest = touch("ckpt_tiny_4e5f6a7b_step000050.pt", 3_000)  # the run being resumed, interrupted at step 50
    touch("ckpt_tiny_4e5f6a7b_step000040.pt", 2_000)
    touch("ckpt_tiny_4e5f6a7b_step000999.pt.tmp", 9_000)  # not a checkpoint name
    touch("notes.txt", 9_000)
    assert resolve("latest", tmp_path) == newest
    tie = touch("ckpt_other_8c9d0e1f_step000060.pt", 3_000)
    assert resolve("latest", tmp_path) == tie, "same mtime: the higher step"
    assert resolve(str(newest), tmp_path / "elsewhere") == newest, "a path is taken as it is"
    assert resolve(tmp_path, tmp_path / "elsewhere") == tie, "a folder: its newest"


def test_a_folder_with_no_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoints \(ckpt_\*_step\*\.pt\) in this folder; give a checkpoint "
                                              r"path$"):
        resolve(tmp_path)


def test_latest_in_an_empty_or_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        resolve("latest", tmp_path)
    # a folder that is not there at all: said so, and what to do (before, the same words as an empty folder)
    with pytest.raises(CheckpointError, match=r"^latest: no .*missing/ folder here, so no checkpoint to take .*; "
                                              r"train first, or give a checkpoint file or folder$"):
        resolve("latest", tmp_path / "missing")
    (tmp_path / "ckpt.pt").write_bytes(b"x")  # --checkpoint-dir given a file
    with pytest.raises(CheckpointError, match=r"^latest: .*ckpt.pt is a file, not a checkpoint folder; give the file "
                                              r"itself \(--resume .*ckpt.pt\), or --checkpoint-dir its folder$"):
        resolve("latest", tmp_path / "ckpt.pt")


# --- errors ----------------------------------------------------------------------------------------------------
def test_checkpoint_folder_is_the_flag_else_the_resumed_ones_else_the_default(tmp_path):
    resumed = SimpleNamespace(path=tmp_path / "old" / "ckpt_tiny_ab12cd34_step000004.pt")
    assert checkpoint_folder(str(tmp_path / "new"), resumed) == tmp_path / "new"
    assert checkpoint_folder(None, resumed) == checkpoint_folder("", resumed) == tmp_path / "old"
    assert checkpoint_folder(None, None) == Path("checkpoints")
    resumed.log_path = str(tmp_path / "runs" / "20260101-000000_tiny_ab12cd34.txt")
    (tmp_path / "runs").mkdir()
    Path(resumed.log_path).touch()  # the first part's log, found (tests/test_checkpoint_log.py: where it is not)
    assert log_folder(str(tmp_path / "new"), resumed) == tmp_path / "new"
    assert log_folder(None, resumed) == tmp_path / "runs"
    assert log_folder(None, SimpleNamespace(log_path=None)) == log_folder(None, None) == Path("logs")


def test_missing_corrupt_and_foreign_files(state, tmp_path):
    r, model, opts = state
    good = save_small(tmp_path / "good.pt", r, model, opts).read_bytes()
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load(tmp_path)
    cases = {
        "truncated.pt": (good[: len(good) // 2], "not a readable checkpoint"),
        "noise.pt": (bytes(range(256)) * 64, "not a readable checkpoint"),
        "empty.pt": (b"", "not a readable checkpoint"),
    }
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    cases["random.pt"] = (None, "not a readable checkpoint")
    for name, (data, message) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=message) as info:
            load(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
        assert "weights_only" not in str(info.value)  # torch's advice to unpickle anything: not for our users
    # bytes damaged inside a tensor's data: the archive still opens and torch.load would read wrong numbers
    with zipfile.ZipFile(tmp_path / "good.pt") as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest tensor's data, stored uncompressed
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # past its local header
    damaged = bytearray(good)
    damaged[start + 100:start + 164] = b"\xff" * 64
    (tmp_path / "damaged.pt").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match=rf"damaged.pt: corrupt checkpoint \({info.filename} fails its checksum\)"):
        load(tmp_path / "damaged.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a speedrun checkpoint"):
        load(tmp_path / "foreign.pt")
    torch.save({"format": "speedrun-checkpoint v0"}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="v0"):
        load(tmp_path / "old.pt")
    torch.save({"format": ckpt_mod.FORMAT, "recipe": {**r.to_dict(), "flux": 1}}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="flux"):
        load(tmp_path / "future.pt")
    torch.save(StreamPosition(), tmp_path / "pickle.pt")  # arbitrary classes are refused, not unpickled
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*StreamPosition") as info:
        load(tmp_path / "pickle.pt")
    assert str(info.value).endswith("not an allowed global by default.)")  # the finding, without torch's advice


# --- exact resume ------------------------------------------------------------------------------------------------
# the fast recipe's changes that add state to a checkpoint or follow the step, over tiny's record-21 model: a resume
# of the plain model tests nothing this one does not (it took CI 15 s as a second variant)
FAST_CHANGES = dict(smear=True, attn_gate=True, no_mlp_layers=[0], normuon_beta2=0.95, orthogonalizer="polar_express",
                    mtp_weights=[0.5, 0.25])


@pytest.fixture(scope="module")
def runs(shards, tmp_path_factory):
    """2N = 6 steps straight; the same run saving every N = 3 steps; a resume from step 3. val_every = 3 puts a
    validation exactly at the checkpoint's step, the case where a resumed run could skip or repeat one. The fast
    recipe's changes: the checkpoint must carry NorMuon's second moments, and the MTP weights must follow the step."""
    r = recipe(shards, **FAST_CHANGES)
    tmp = tmp_path_factory.mktemp("resume")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    straight = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp / "logs_a"), say=quiet)
    saving = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp / "logs_b"), say=quiet, save_every=3,
                 checkpoint_dir=str(tmp / "ckpts"))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers, "handlers restored"
    half = load(checkpoint_at(tmp / "ckpts", 3))
    resumed = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp / "logs_c"), say=quiet, resume=half.path,
                  checkpoint_dir=str(tmp / "ckpts_c"))
    return r, straight, saving, half, resumed, tmp


def test_resume_is_exact(runs):
    r, straight, saving, half, resumed, _ = runs
    assert len(straight.train_losses) == 6
    assert half.step == 3
    assert half.train_losses == straight.train_losses[:3], "the checkpoint holds the losses of steps 1-3"
    assert half.val_losses == straight.val_losses[:1]
    assert half.stream == dict(shard=0, offset=3 * 256, passes=0)
    for other in (saving, resumed):
        assert other.train_losses == straight.train_losses  # bitwise: floats compared with ==
        assert other.val_losses == straight.val_losses
        assert [s for s, _ in other.val_losses] == [0, 3, 6]
        want = straight.model.state_dict()
        got = other.model.state_dict()
        assert got.keys() == want.keys()
        different = [k for k in want if not torch.equal(got[k], want[k])]
        assert different == [], f"parameters differ after resume: {different}"
    assert resumed.training_time_ms >= half.train_time_ms > 0
    assert straight.train_losses[-1] < straight.train_losses[0] - 0.5  # it trained
    if r.normuon_beta2:
        assert any("normuon_second_moment" in s for s in half.optimizers[1]["state"].values())


def test_checkpoints_written_and_final(runs):
    r, _, saving, _, resumed, tmp = runs
    saving_id = Path(saving.log_path).stem.rsplit("_", 1)[1]  # checkpoints are named after the log of their run
    assert sorted(p.name for p in (tmp / "ckpts").iterdir()) == [f"ckpt_tiny_{saving_id}_step000003.pt",
                                                                  f"ckpt_tiny_{saving_id}_step000006.pt"]
    final = load(checkpoint_at(tmp / "ckpts", 6))
    assert final.complete and final.val_losses == saving.val_losses and final.train_losses == saving.train_losses
    assert final.log_path == saving.log_path
    # the resumed run kept the checkpoint's save_every (3): it wrote its final checkpoint where it was told
    resumed_id = Path(resumed.log_path).stem.rsplit("_", 1)[1]
    assert [p.name for p in (tmp / "ckpts_c").iterdir()] == [f"ckpt_tiny_{resumed_id}_step000006.pt"]
    log = parse_log(saving.log_path)
    assert log.complete
    assert "note: checkpoint" in open(saving.log_path).read()


def test_resumed_log_notes_the_resume(runs):
    r, _, saving, half, resumed, _ = runs
    text = open(resumed.log_path).read()
    assert f"note: resumed from {half.path} at step 3 (earlier steps: log {saving.log_path})" in text
    log = parse_log(resumed.log_path)
    assert log.complete
    assert [s for s, _, _ in log.train_steps] == [4, 5, 6]
    assert [s for s, _, _ in log.val] == [3, 6]
    assert log.training_time_ms == pytest.approx(resumed.training_time_ms, abs=1)


def test_resume_refusals(runs, tmp_path):
    r, _, _, half, _, tmp = runs
    final = checkpoint_at(tmp / "ckpts", 6)
    with pytest.raises(CheckpointError, match=r"complete \(step 6 of 6\)"):
        load_for_resume(str(final))
    with pytest.raises(CheckpointError, match=r"complete"):
        run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path), say=quiet, resume=final)
    # --recipe/--set may repeat the checkpoint's recipe, not change it
    overrides = {k: v for k, v in r.to_dict().items() if k in SMALL or k in ("steps", "train_files", "val_files",
                 "val_tokens", "val_every", "warmup_steps", "train_loop", "sample_tokens", *FAST_CHANGES)}
    assert load_for_resume(str(half.path), recipe_name="tiny", overrides=overrides).step == 3
    with pytest.raises(CheckpointError, match=r"the checkpoint is a run of recipe 'tiny', not 'fast'; --resume "
                                              r"continues the checkpoint's own recipe: drop --recipe$"):
        load_for_resume(str(half.path), recipe_name="fast")
    with pytest.raises(CheckpointError, match=r"change steps \(checkpoint 6, given 12\)"):
        load_for_resume(str(half.path), recipe_name="tiny", overrides={**overrides, "steps": 12})
    # --set alone applies to the checkpoint's recipe
    assert load_for_resume(str(half.path), overrides=["steps=6", "seed=0"]).step == 3
    with pytest.raises(CheckpointError, match=r"change steps \(checkpoint 6, given 12\);"):
        load_for_resume(str(half.path), overrides=["steps=12"])
    with pytest.raises(CheckpointError, match="differs in steps"):
        other = load_recipe("tiny", {**overrides, "steps": 12})
        run(other, make_plan(other, force_device="cpu"), log_dir=str(tmp_path), say=quiet, resume=half.path)
    # other train files would change the data order
    moved = write_shard(tmp_path / "train_000000.bin", np.arange(30_000) % 50_000)
    other = load_recipe("tiny", {**overrides, "train_files": str(moved)})
    c = load(half.path)
    c.recipe = other
    with pytest.raises(CheckpointError, match="train files"):
        run(other, make_plan(other, force_device="cpu"), log_dir=str(tmp_path), say=quiet, resume=c)
    assert not (tmp_path / "checkpoints").exists()


def test_cli_resume_errors_are_one_line(tmp_path, capsys, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    rc = main(["train", "--resume", "latest", "--checkpoint-dir", str(tmp_path), "--log-dir", str(tmp_path / "l")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("speedrun: error: ") and "no checkpoints" in err
    (tmp_path / "bad.pt").write_bytes(b"nope")
    rc = main(["train", "--resume", str(tmp_path / "bad.pt"), "--log-dir", str(tmp_path / "l")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "bad.pt: not a readable checkpoint" in err
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize("edit, said", [
    ({"mlp_hidden": 256}, "12 tensors of another shape (e.g. blocks.0.mlp.c_fc.weight: 128x64 in the checkpoint, "
                          "256x64 in its recipe's model)"),
    ({"value_embeds": 1}, "1 tensor its recipe's model has no place for (e.g. value_embeds.1.weight)"),
    ({"smear": True}, "2 tensors of its recipe's model missing (e.g. smear_gate_w)")])
def test_a_checkpoint_whose_recipe_was_edited_is_refused_before_the_warm_up(state, tmp_path, capsys, monkeypatch,
                                                                            edit, said):
    """A hand-edited recipe in a checkpoint failed after the compile and warm-up, with torch's first line only
    ('Error(s) in loading state_dict for GPT:'); it is now one line naming a tensor, before any step, and the same
    for `sample` / `eval`."""
    r, model, opts = state
    path = save_small(tmp_path / "ckpt.pt", r, model, opts, save_every=2)
    snap = torch.load(path, weights_only=False)
    snap["recipe"].update(edit)
    torch.save(snap, path)
    warmed = []
    monkeypatch.setattr(speedrun.train, "warmup_and_restore", lambda *a, **k: warmed.append(1))
    rc = main(["train", "--resume", str(path), "--device", "cpu", "--log-dir", str(tmp_path / "l")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and warmed == [] and err.startswith(f"speedrun: error: {path}: the weights do not fit the "
                                                       f"checkpoint's recipe (edited?): ")
    assert said in err and len(err.splitlines()) == 1
    with pytest.raises(CheckpointError, match=re.escape(said)):
        ckpt_mod.load_model(path, device="cpu")


def test_cli_resume_refuses_no_final_checkpoint_where_the_run_saves_periodically(state, tmp_path, capsys):
    r, model, opts = state
    path = save_small(tmp_path / "ckpt.pt", r, model, opts, save_every=2)
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(path), "--no-final-checkpoint", "--log-dir", str(tmp_path / "l")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err.endswith("--no-final-checkpoint: the resumed run saves every 2 steps and at the "
                                              "end, as its checkpoint's run did (--save-every 0 turns that off) (see "
                                              "'speedrun train --help')")
    assert not (tmp_path / "l").exists()


def test_cli_resume_writes_beside_the_checkpoint_it_resumes(shards, tmp_path, monkeypatch, capsys):
    # `speedrun train --resume runs/a/ckpt_..._step000002.pt`: the rest of the run's checkpoints go to runs/a, as the
    # library's default says, not to a new ./checkpoints folder
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    r = recipe(shards, steps=4, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=2,
        checkpoint_dir=str(tmp_path / "a"))
    half = checkpoint_at(tmp_path / "a", 2)
    for later in (tmp_path / "a").glob("*step000004.pt"):
        later.unlink()  # the run as if stopped after step 2
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["train", "--resume", str(half), "--device", "cpu", "--dry-run"]) == 0
    assert f"\nresume: {half} at step 2 of 4\n" in capsys.readouterr().out  # what the run would continue from
    assert main(["train", "--resume", str(half), "--device", "cpu"]) == 0
    assert not (tmp_path / "elsewhere" / "checkpoints").exists()
    assert not (tmp_path / "elsewhere" / "logs").exists()  # its log joins the first part's: stats there sees both
    assert len(list((tmp_path / "logs").glob("*_tiny_*.txt"))) == 2
    (final,) = (tmp_path / "a").glob("ckpt_tiny_*_step000004.pt")
    assert load(final).optimizers  # the checkpoint's --save-every 2 went on: a full final checkpoint
    # --save-every 0 turns the checkpoint's setting off: a final model alone; so --keep-last has nothing to keep
    final.unlink()
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(half), "--device", "cpu", "--save-every", "0", "--keep-last", "1"])
    assert "the resumed run writes none (give --save-every N)" in capsys.readouterr().err
    assert main(["train", "--resume", str(half), "--device", "cpu", "--save-every", "0"]) == 0
    (final,) = (tmp_path / "a").glob("ckpt_tiny_*_step000004.pt")
    assert load(final).optimizers == []
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted([half.name, final.name])


def test_resuming_a_run_of_relative_data_paths_from_elsewhere_says_where_they_are_read(shards, tmp_path, monkeypatch):
    from speedrun.data.shards import ShardError
    from speedrun.run_data import check_run_data

    (tmp_path / "first" / "data").mkdir(parents=True)
    for f in shards:
        (tmp_path / "first" / "data" / f.name).write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path / "first")
    r = recipe(shards, steps=4, train_files="data/train_000000.bin", val_files="data/val_000000.bin")
    run(r, make_plan(r, force_device="cpu"), log_dir="logs", say=quiet, save_every=2, checkpoint_dir="ck")
    half = load(checkpoint_at(tmp_path / "first" / "ck", 2))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(ShardError, match=r"data/train_000000.bin: no such file or folder \(the checkpoint's recipe "
                                         r"names 'data/train_000000.bin', relative to the folder the run started in; "
                                         r"this is .*elsewhere: resume from there\)"):
        check_run_data(half.recipe, half)
    with pytest.raises(ShardError) as fresh:  # a new run's error says nothing of a checkpoint
        check_run_data(half.recipe)
    assert "checkpoint" not in str(fresh.value)

