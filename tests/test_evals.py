"""`speedrun eval`: val loss of a checkpoint on any shards (== the training loop's validation), and HellaSwag
completion scoring on hand-made items that a tiny model trained on them must get right."""

from __future__ import annotations

import io
import json
import random
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL

import speedrun.evals.hellaswag as hs
from speedrun.checkpoint import load_model
from speedrun.cli import main
from speedrun.data.shards import ShardError, write_shard
from speedrun.data.tokenizer import EOT, encode_document, gpt2
from speedrun.errors import SpeedrunError
from speedrun.evals.hellaswag import HellaSwagError, evaluate_hellaswag, read_items, score_item
from speedrun.evals.sample import final_window
from speedrun.evals.val_loss import evaluate_checkpoint
from speedrun.optim.schedule import long_window_blocks
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.step import evaluate
from speedrun.train import run

DEV = "cpu"  # also where a GPU is visible: the comparisons below are with CPU runs
# Four sentences whose last word depends on the subject three or four tokens back: the items below are these
# contexts with the four last words as endings, so only a model that uses the context can pick the right one.
SENTENCES = {"the cat sat on the": "mat.", "the dog ran in the": "park.", "the bird flew over the": "tree.",
             "the fish swam in the": "lake."}


def quiet(*args, **kwargs):
    pass


def corpus(n: int, seed: int) -> np.ndarray:
    rng = random.Random(seed)
    tokens = []
    for _ in range(n):
        ctx = rng.choice(list(SENTENCES))
        tokens += encode_document(f"{ctx} {SENTENCES[ctx]}")  # <|endoftext|> first, as in every shard
    return np.array(tokens)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained 60 steps on the four sentences (repeated, shuffled, one document each)."""
    d = tmp_path_factory.mktemp("evals")
    train = write_shard(d / "sent_train_000000.bin", corpus(1200, 0))
    val = write_shard(d / "sent_val_000000.bin", corpus(200, 1))
    r = load_recipe("tiny", {**SMALL, "steps": 60, "val_every": 0, "warmup_steps": 0, "val_tokens": 512,
                             "train_files": str(train), "val_files": str(val), "train_loop": True,
                             "sample_tokens": 0})
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(d / "logs"), say=quiet, save_every=60,
                 checkpoint_dir=str(d))
    return Path(result.checkpoint_path), result, val, d


@pytest.fixture(scope="module")
def items_file(trained):
    """One item per sentence; the endings rotated so that the right one sits at a different index each time."""
    path = trained[3] / "items.jsonl"
    endings = list(SENTENCES.values())
    with open(path, "w") as f:
        for i, ctx in enumerate(SENTENCES):
            e = endings[i:] + endings[:i]
            e = e[2:] + e[:2] if i % 2 else e
            f.write(json.dumps(dict(ind=i, ctx=ctx, endings=e, label=e.index(SENTENCES[ctx]), split="val")) + "\n")
    return path


# --- val loss -----------------------------------------------------------------------------------------------------
def test_val_loss_equals_the_training_loops_validation(trained):
    path, result, val, _ = trained
    got = evaluate_checkpoint(path, [str(val)], device=DEV, say=quiet)
    # the run validated the same checkpoint on the same file at its last step
    assert got == result.val_losses[-1][1]
    # and train.evaluate on the same data, with the final step's window, gives the same number
    model, plan, ckpt = load_model(path, DEV)
    r = ckpt.recipe
    model.train()
    want = evaluate(model, r, plan, long_window_blocks(r.steps, r.steps, r.window_ramp_tokens, r.attn_block_size),
                    [val])
    assert got == want
    assert got < 1.0, "the sentences are learned"


def test_an_intermediate_checkpoint_scores_as_its_runs_validation_did(tmp_path):
    # the window grows with the step: a step-4 checkpoint is scored with step 4's window, the log's figure
    train = write_shard(tmp_path / "s_train_000000.bin", corpus(1200, 0))
    val = write_shard(tmp_path / "s_val_000000.bin", corpus(200, 1))
    r = load_recipe("tiny", {**SMALL, "seq_len": 512, "val_seq_len": 512, "batch_tokens": 512, "window_ramp_tokens": 512,
                             "attn_block_size": 128, "steps": 8, "val_every": 4, "warmup_steps": 0, "val_tokens": 1024,
                             "train_files": str(train), "val_files": str(val), "sample_tokens": 0})
    blocks = [long_window_blocks(s, r.steps, r.window_ramp_tokens, r.attn_block_size) for s in (4, 8)]
    assert blocks[0] < blocks[1], "the test needs a window that still grows at step 4"
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=quiet, save_every=4,
                 checkpoint_dir=str(tmp_path / "ck"))
    logged = dict(result.val_losses)
    for step in (4, 8):
        (path,) = (tmp_path / "ck").glob(f"*_step{step:06d}.pt")
        assert evaluate_checkpoint(path, [str(val)], device=DEV, say=quiet) == logged[step]


def test_val_tokens_capped_or_refused(trained, make_shard):
    path, _, val, _ = trained
    small = make_shard(corpus(100, 2)[:400], name="small_val.bin")  # one row of 256 (+1); the recipe wants 512
    lines = []
    loss = evaluate_checkpoint(path, [str(small)], device=DEV, say=lines.append)
    assert lines[0] == f"val files: {small}"
    assert lines[1] == "note: the val files hold 256 positions in rows of 256; scoring those (the recipe's val_tokens is 512)"
    assert "val_loss" in lines[-1] and "over 256 tokens" in lines[-1]
    assert evaluate_checkpoint(path, str(small), val_tokens=256, device=DEV, say=quiet) == loss
    with pytest.raises(ShardError, match="fewer than --val-tokens 512"):
        evaluate_checkpoint(path, [str(small)], val_tokens=512, device=DEV, say=quiet)
    with pytest.raises(SpeedrunError, match="multiple of the recipe's val_seq_len=256"):
        evaluate_checkpoint(path, [str(val)], val_tokens=300, device=DEV, say=quiet)
    tiny = make_shard(np.arange(100), name="tiny_val.bin")
    with pytest.raises(ShardError, match="no whole row"):
        evaluate_checkpoint(path, [str(tiny)], device=DEV, say=quiet)


# --- HellaSwag ------------------------------------------------------------------------------------------------------
def test_trained_model_prefers_the_memorised_endings(trained, items_file):
    path, _, _, _ = trained
    lines = []
    acc = evaluate_hellaswag(path, data=items_file, device=DEV, say=lines.append)
    assert acc == 1.0, lines
    assert "accuracy 1.0000 (4/4" in lines[-1]
    assert evaluate_hellaswag(path, data=items_file, limit=2, device=DEV, say=quiet) == 1.0


def direct_scores(model, ctx: str, endings: list[str]) -> list[float]:
    """The definition: a full forward pass over [EOT] + ctx + ending (padded to a block, alone in its row), then
    the mean cross-entropy of the ending tokens."""
    enc = gpt2()
    window = final_window(model)
    out = []
    for ending in endings:
        prefix = [EOT] + enc.encode_ordinary(ctx)
        tokens = prefix + enc.encode_ordinary(" " + ending)
        x = F.pad(torch.tensor(tokens), (0, -len(tokens) % 128))
        with torch.no_grad():
            logits = model(x, None, window)[0]
        positions = torch.arange(len(prefix) - 1, len(tokens) - 1)
        out.append(F.cross_entropy(logits[positions], torch.tensor(tokens[len(prefix):])).item())
    return out


def test_score_item_matches_direct_computation(trained):
    path, _, _, _ = trained
    model, _, _ = load_model(path, DEV)
    cases = [
        ("the dog ran in the", list(SENTENCES.values())),
        ("A man is sitting on a roof. He", ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                                           "is holding a rubik's cube.", "starts pulling up roofing on a roof."]),
        ("x" * 300, ["y", "zz top", "a long ending " * 30, "."]),  # past one attention block
    ]
    for ctx, endings in cases:
        got, want = score_item(model, ctx, endings), direct_scores(model, ctx, endings)
        assert len(got) == 4
        assert max(abs(a - b) for a, b in zip(got, want)) < 1e-4, (ctx, got, want)


def test_read_items_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ctx": "a", "endings": ["b", "c"], "label": 1}\n{"ctx": "a"}\n')
    with pytest.raises(HellaSwagError, match=r"bad.jsonl:2: not a HellaSwag item"):
        read_items(bad)
    assert len(read_items(bad, limit=1)) == 1
    bad.write_text('{"ctx": "a", "endings": ["b", "c"], "label": 2}\n')
    with pytest.raises(HellaSwagError, match="label 2"):
        read_items(bad)
    with pytest.raises(HellaSwagError, match="no such file"):
        read_items(tmp_path / "absent.jsonl")
    with pytest.raises(HellaSwagError, match=r": is a folder; give the JSON-lines file"):
        read_items(tmp_path)
    bad.write_text('{"ctx": "a", "endings": [" b", ""], "label": 1}\n')  # an empty ending would score nan, and win
    with pytest.raises(HellaSwagError, match=r"bad.jsonl:1: ending 1 is empty; every ending needs text to score"):
        read_items(bad)
    for item, why in (('"endings": "bcde", "label": 1', r'endings must be a list of strings, not "bcde"'),
                      ('"endings": ["b", "c"], "label": true', "label must be an integer, not true"),
                      ('"endings": ["b"], "label": 0', r"1 ending\(s\); an item needs 2 or more to choose from")):
        bad.write_text('{"ctx": "a", ' + item + "}\n")  # not split into letters, not read as 1, not 100% by default
        with pytest.raises(HellaSwagError, match=r"bad.jsonl:1: .*" + why):
            read_items(bad)
    bad.write_text('{"ctx": "a", "endings": ["b", "c"], "label": "1"}\n')  # the hub's copy spells labels as text
    assert read_items(bad)[0]["label"] == 1
    # Latin-1 text, or a checkpoint given as --data: its line, not a UnicodeDecodeError traceback
    bad.write_bytes('{"ctx": "a", "endings": ["b", "c"], "label": 1}\n{"ctx": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(HellaSwagError, match=r"bad.jsonl:2: not UTF-8 text \(byte 0xe9 at column 13\); give the "):
        read_items(bad)


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch, trained):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(hs.urllib.request, "urlopen", offline)
    with pytest.raises(HellaSwagError) as info:
        evaluate_hellaswag(trained[0], device=DEV, say=quiet)
    msg = str(info.value)
    assert hs.URL in msg and "--data" in msg and "name resolution" in msg and "\n" not in msg
    cache = tmp_path / "cache" / "speedrun"
    assert not cache.exists() or list(cache.iterdir()) == [], "no partial file is left"
    # through the CLI: one line, exit code 2
    rc = main(["eval", "hellaswag", str(trained[0]), "--device", DEV])
    assert rc == 2


def test_download_writes_the_cache_once(tmp_path, monkeypatch, items_file, trained):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []

    def fake(url, timeout):
        calls.append(url)
        return io.BytesIO(items_file.read_bytes())

    monkeypatch.setattr(hs.urllib.request, "urlopen", fake)
    assert evaluate_hellaswag(trained[0], device=DEV, say=quiet) == 1.0
    assert evaluate_hellaswag(trained[0], device=DEV, say=quiet) == 1.0
    assert calls == [hs.URL], "downloaded once, then read from the cache"
    cached = tmp_path / "cache" / "speedrun" / "hellaswag_val.jsonl"
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]
    assert cached.read_bytes() == items_file.read_bytes()


def test_cli_eval(trained, items_file, capsys, tmp_path, monkeypatch):
    path, result, val, _ = trained
    assert main(["eval", str(path), "--val", str(val), "--device", DEV]) == 0
    out = capsys.readouterr().out
    assert f"val_loss {result.val_losses[-1][1]:.4f} over 512 tokens" in out
    assert main(["eval", "hellaswag", str(path), "--data", str(items_file), "--device", DEV]) == 0
    assert "hellaswag: accuracy 1.0000 (4/4" in capsys.readouterr().out
    # `eval hellaswag` with no checkpoint: latest, the newest in ./checkpoints (as `eval` and `sample` alone)
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(path, tmp_path / "checkpoints" / path.name)
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "hellaswag", "--data", str(items_file), "--device", DEV]) == 0
    assert "hellaswag: accuracy 1.0000 (4/4" in capsys.readouterr().out
    # a checkpoint after --val (which takes every path after it) is named as such, with the order that works
    for ckpt in (str(path), "latest", str(tmp_path / "checkpoints")):
        assert main(["eval", "--val", str(val), ckpt, "--device", DEV]) == 2
        assert capsys.readouterr().err.endswith(f"--val {ckpt}: a checkpoint, not shards; --val takes every path "
                                                f"after it, so name the checkpoint first: speedrun eval {ckpt} --val ...\n")
    # without --val: the checkpoint recipe's val_files, the same shard here
    assert main(["eval", str(path), "--device", DEV]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"val files: {val} (the checkpoint recipe's val_files {str(val)!r})\n")
    assert f"val_loss {result.val_losses[-1][1]:.4f} over 512 tokens" in out


def test_relative_val_files_from_another_folder_say_where_they_are_read(trained, tmp_path, monkeypatch):
    """`speedrun eval CKPT` elsewhere than where its run started: the recipe's relative val_files are not there."""
    import dataclasses

    from speedrun.checkpoint import load

    path, _, _, _ = trained
    ckpt = load(path)
    moved = dataclasses.replace(ckpt, recipe=dataclasses.replace(ckpt.recipe, val_files="data/mine_val_*.bin"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ShardError, match=r"^data/mine_val_\*\.bin: .* \(the checkpoint's recipe names "
                                         r"'data/mine_val_\*\.bin', relative to the folder its run started in; this "
                                         rf"is {tmp_path}: run from there, or give --val PATH\)$"):
        evaluate_checkpoint(moved, device=DEV, say=quiet)
