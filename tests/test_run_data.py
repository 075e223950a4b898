"""A run's data checked before any work: missing FineWeb shards say how many to get, train files too short for the
run (counted from a resumed run's position), and what a checkpoint's resume needs of the files. And `--data DIR`:
a folder's train and val shards by name."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import checkpoint_at

from speedrun.checkpoint import CheckpointError, load
from speedrun.cli import main
from speedrun.data.demo import DEMO_DIR
from speedrun.data.fineweb import download_hint
from speedrun.data.shards import ShardError, read_shard, shard_fingerprint, write_shard
from speedrun.data.stream import BatchStream, StreamPosition
from speedrun.plan import make_plan
from speedrun.recipe import RecipeError, load_recipe
from speedrun.run_data import check_run_data, data_folder_overrides
from speedrun.train import run

SMALL = {"seq_len": 256, "val_seq_len": 256, "window_ramp_tokens": 256, "batch_tokens": 256, "val_tokens": 512,
         "train_loop": False}


@pytest.fixture
def files(tmp_path):
    """A train file of 1,000 tokens (3 steps of 256: a step needs 257) and a val file."""
    train = write_shard(tmp_path / "t_train.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:1_000]))
    val = write_shard(tmp_path / "t_val.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:600]))
    return train, val


def recipe(files, **extra):
    return load_recipe("tiny", {**SMALL, "train_files": str(files[0]), "val_files": str(files[1]), **extra})


def resumed_at(step: int, offset: int, files):
    """What check_run_data reads of a checkpoint: its step, stream position and train files."""
    return SimpleNamespace(path="ckpt.pt", step=step, stream=vars(StreamPosition(0, offset, 0)),
                           train_files=[(files[0].name, 1_000)])


def test_enough_train_steps_pass_and_report_the_files(files):
    data = check_run_data(recipe(files, steps=3))
    assert data.train_files == [files[0]] and data.val_files == [files[1]] and data.position is None
    assert data.file_list == [("t_train.bin", 1_000)]
    assert check_run_data(recipe(files, steps=50, train_loop=True)).position is None  # a looping stream has no end


def test_too_few_train_steps_stop_the_run(files):
    with pytest.raises(ShardError, match=r"t_train.bin: the train files hold 3 steps of 256 tokens, the run needs 4; "
                                         r"add shards or set train_loop = true$"):
        check_run_data(recipe(files, steps=4))


def test_a_resumed_run_counts_from_its_checkpoint(files):
    r = recipe(files, steps=5)
    # at step 2 the stream stands at offset 512: one step left there, three needed
    with pytest.raises(ShardError, match="hold 1 step of 256 tokens after the checkpoint, the run needs 3;"):
        check_run_data(r, resumed_at(2, 512, files))
    data = check_run_data(recipe(files, steps=3), resumed_at(2, 512, files))
    assert data.position == StreamPosition(0, 512, 0)
    moved = SimpleNamespace(**{**vars(resumed_at(2, 512, files)), "train_files": [("other.bin", 1_000)]})
    with pytest.raises(CheckpointError, match="are not the ones the run trained on"):
        check_run_data(r, moved)


def test_a_resume_refuses_a_train_file_changed_in_place(files, tmp_path, monkeypatch, capsys):
    # the same name and token count (another tokenization, say) would train on other data: not the run resumed
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    r = recipe(files, steps=3, val_every=0, sample_tokens=0, model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a, **k: None, save_every=1,
        checkpoint_dir=str(tmp_path / "ck"))
    ckpt = load(checkpoint_at(tmp_path / "ck", 1))
    was = shard_fingerprint(files[0])
    assert ckpt.train_files == [("t_train.bin", 1_000, was)]
    assert check_run_data(r, ckpt).position == StreamPosition(0, 256, 0)  # the same file: it resumes
    write_shard(files[0], np.array(read_shard(files[0]))[::-1])  # rewritten in place: 1,000 tokens, other order
    now = shard_fingerprint(files[0])
    assert main(["train", "--resume", str(ckpt.path), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"speedrun: error: {ckpt.path}: train file t_train.bin changed since the checkpoint (the same 1,000 tokens, "
        f"other content: fingerprint {now}, the run's {was}); the resume would train on other data: put back the "
        f"file the run trained on, or start a new run\n")
    check_run_data(r, resumed_at(1, 256, files))  # an older checkpoint (names and tokens only) resumes as before


def test_a_sampled_head_too_small_for_the_text_stops_the_run_before_any_work(files, tmp_path):
    distinct = write_shard(tmp_path / "d_train.bin", np.arange(1_000) % 200)  # 200 distinct ids a 256-token row
    r = recipe((distinct, files[1]), steps=3, sampled_head_rows=128, sampled_head_end_frac=0.34)  # step 0 sampled
    with pytest.raises(RecipeError, match=r"^sampled_head_rows=128 is too few for these train files: step 0's targets "
                                          r"need 200 head rows \(every distinct token id\); set sampled_head_rows to "
                                          r"256 or more \(a multiple of 128\), or to 0 \(the full softmax\)$"):
        check_run_data(r)
    check_run_data(recipe((distinct, files[1]), steps=3, sampled_head_rows=256, sampled_head_end_frac=0.34))
    resumed = SimpleNamespace(**{**vars(resumed_at(1, 256, files)), "train_files": [("d_train.bin", 1_000)]})
    check_run_data(r, resumed)  # from step 1 on, the full softmax: no row count to check


def test_the_row_count_advised_fits_every_step_not_only_the_first_short_one(files, tmp_path):
    """A user set the count the error named and met the same error at a later step (512 advised, step 4 needed 538):
    the advice is the most any sampled step needs."""
    tokens = np.concatenate([np.arange(256) % 200, np.arange(256) % 250 + 1000, np.arange(488) % 150])
    grows = write_shard(tmp_path / "g_train.bin", tokens)  # step 0: 201 distinct targets, step 1: 251
    r = recipe((grows, files[1]), steps=3, sampled_head_rows=128, sampled_head_end_frac=0.67)  # steps 0-1 sampled
    with pytest.raises(RecipeError, match=r"^sampled_head_rows=128 is too few for these train files: step 0's targets "
                                          r"need 201 head rows \(every distinct token id\); step 1's need the most, "
                                          r"251; set sampled_head_rows to 256 or more"):
        check_run_data(r)
    check_run_data(recipe((grows, files[1]), steps=3, sampled_head_rows=256, sampled_head_end_frac=0.67))


def test_the_stream_returned_is_the_ranks_own_at_the_checkpoints_position(files):
    r = recipe(files, steps=3, seq_len=128, window_ramp_tokens=128)  # two ranks of one 128-token row each
    for rank in (0, 1):
        got = check_run_data(r, resumed_at(2, 512, files), world_size=2, rank=rank).stream
        same = BatchStream([files[0]], 256, 128, rank, 2, loop=False, position=StreamPosition(0, 512, 0))
        assert (got.rank, got.world_size, got.position) == (rank, 2, StreamPosition(0, 512, 0))
        [(inputs, targets)], [(want_inputs, want_targets)] = next(got), next(same)
        assert torch.equal(inputs, want_inputs) and torch.equal(targets, want_targets)


def test_a_run_scans_its_train_files_once(files, tmp_path, monkeypatch):
    # every train token id is checked where the stream is built; a second stream would scan every shard again
    built, init = [], BatchStream.__init__
    monkeypatch.setattr(BatchStream, "__init__", lambda self, *a, **k: built.append(k.get("role", "train")) or
                        init(self, *a, **k))
    r = recipe(files, steps=2, val_every=0)
    run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a, **k: None,
        checkpoint_dir=str(tmp_path / "ck"))
    assert built.count("train") == 1


def test_missing_fineweb_files_say_how_many_shards_to_get(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # record21: 1770 steps of 393,216 tokens; a 100M-token shard holds (10**8 - 1) // 393,216 = 254 of them
    with pytest.raises(ShardError, match=r"^data/fineweb10B/fineweb_train_\*\.bin: matches no shard files; get them "
                                         r"with `speedrun data fineweb --train-shards 7`$"):
        check_run_data(load_recipe("record21"))
    assert download_hint("data/finewebedu10B/finewebedu_train_*.bin", 1000, 49_152) == (
        "; get them with `speedrun data fineweb --variant edu10B --train-shards 1`")
    assert download_hint("./data/fineweb100B/fineweb_train_*.bin", 100_000, 393_216) == (
        "; get them with `speedrun data fineweb --variant 100B --train-shards 394`")
    assert download_hint("data/fineweb10B/fineweb_train_*.bin", 100_000, 393_216) == (
        "; kjj0/fineweb10B-gpt2 has 103 train shards, the run needs 394: set train_loop = true")
    assert download_hint("data/fineweb10B_mine/x_*.bin", 1770, 393_216) == ""  # not the download's folder
    assert download_hint("elsewhere/fineweb10B/x_*.bin", 1770, 393_216) == ""


def test_data_folder_gives_its_train_and_val_shards_by_name(tmp_path):
    folder = tmp_path / "my [data]"  # glob characters in the folder's name are the name, not a pattern
    folder.mkdir()
    shards = {n: write_shard(folder / n, np.arange(600) + 1) for n in
              ("mine_val_000000.bin", "mine_train_000000.bin", "mine_train_000001.bin")}
    (folder / "notes_000000.bin").write_bytes(b"not a shard of either kind")
    sets = [f"{k}={v}" for k, v in {**SMALL, "train_loop": "false", "val_tokens": 256, "steps": 1}.items()]
    data = check_run_data(load_recipe("tiny", data_folder_overrides(str(folder), sets) + sets))
    assert data.train_files == [shards["mine_train_000000.bin"], shards["mine_train_000001.bin"]]
    assert data.val_files == [shards["mine_val_000000.bin"]]


def test_data_folder_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(ShardError, match=r"^--data .*nope: no such folder$"):
        data_folder_overrides(str(tmp_path / "nope"), [])
    write_shard(tmp_path / "x_train_000000.bin", np.arange(10))
    with pytest.raises(ShardError, match=r"^--data .*x_train_000000.bin: not a folder$"):
        data_folder_overrides(str(tmp_path / "x_train_000000.bin"), [])
    with pytest.raises(ShardError, match=r"no \*_val_\*\.bin shards there; make them with `speedrun data tokenize "
                                         r"FILES --out .*`"):
        data_folder_overrides(str(tmp_path), [])
    with pytest.raises(RecipeError, match=r"--set val_files: give one or the other"):
        data_folder_overrides(str(tmp_path), ["steps=3", " val_files = x"])


def test_cli_trains_on_a_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_shard(tmp_path / "d" / "c_train_000000.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:1_000]))
    write_shard(tmp_path / "d" / "c_val_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:600]))
    given = {**SMALL, "train_loop": "false", "steps": 2, "val_every": 0, "sample_tokens": 0}
    sets = [a for k, v in given.items() for a in ("--set", f"{k}={v}")]
    assert main(["train", "--recipe", "tiny", "--data", "d", *sets, "--no-final-checkpoint"]) == 0
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    assert '"train_files": "d/c_train_[0-9]*.bin"' in log and '"val_files": "d/c_val_[0-9]*.bin"' in log  # the run's record
    fingerprints = [shard_fingerprint(tmp_path / "d" / f"c_{role}_000000.bin") for role in ("train", "val")]
    assert (f"=== data ===\ntrain: c_train_000000.bin 1000 tokens {fingerprints[0]}\n"
            f"val: c_val_000000.bin 600 tokens {fingerprints[1]}\n") in log  # the files themselves
    assert main(["train", "--recipe", "tiny", "--data", "e"]) == 2  # a one-line error, before any work
    assert capsys.readouterr().err.strip() == "speedrun: error: --data e: no such folder"


def test_a_shards_fingerprint_tells_tokenizations_apart_not_folders(tmp_path):
    tokens = np.arange(200_000) % 50_000
    a = write_shard(tmp_path / "a" / "x_train_000000.bin", tokens)
    b = write_shard(tmp_path / "b" / "x_train_000000.bin", tokens)  # the same tokens elsewhere
    tokens[-5] += 1  # one token near the end: another tokenization of the same length
    c = write_shard(tmp_path / "c" / "x_train_000000.bin", tokens)
    tokens[-5] -= 1
    tokens[7] += 1  # ... near the start
    d = write_shard(tmp_path / "d" / "x_train_000000.bin", tokens)
    fingerprints = [shard_fingerprint(p) for p in (a, b, c, d)]
    assert fingerprints[0] == fingerprints[1] and len(set(fingerprints)) == 3 and len(fingerprints[0]) == 12
    assert shard_fingerprint(write_shard(tmp_path / "e.bin", np.arange(10))) != shard_fingerprint(
        write_shard(tmp_path / "f.bin", np.arange(11)))  # small shards: the whole file


def test_a_relative_data_path_not_found_names_the_folder_it_is_read_from(files, tmp_path, monkeypatch):
    """A recipe file's train_files / val_files are read from the working folder, not the file's (user test): where a
    relative path finds nothing, the error says which folder it was read from, so `recipes/mine.toml` naming
    `data/x.bin` beside it is not a puzzle when run from elsewhere."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(ShardError, match=r"^t_train\.bin: no such file or folder \(a relative path is read from the "
                                         r"folder speedrun runs in, .*elsewhere\)$"):
        check_run_data(load_recipe("tiny", {**SMALL, "train_files": "t_train.bin", "val_files": str(files[1])}))
    with pytest.raises(ShardError, match=r"^/nowhere/x\.bin: no such file or folder$"):  # absolute: no hint
        check_run_data(load_recipe("tiny", {**SMALL, "train_files": "/nowhere/x.bin", "val_files": str(files[1])}))
