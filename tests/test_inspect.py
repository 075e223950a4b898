"""`speedrun data inspect`: statistics of good shards, every bad shard named (without stopping), exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from speedrun.data.demo import DEMO_DIR
from speedrun.data.inspect import inspect_shards, shard_stats
from speedrun.data.tokenizer import EOT, encode_document

REPO_DIR = Path(__file__).resolve().parents[1]
DOCS = ["Hello world, this is the first document.\nIt has two lines.", "Short one.",
        "A third document, somewhat longer than the second one but not by much, with café and 日本語."]


def _tokens(docs=DOCS) -> np.ndarray:
    return np.array([t for d in docs for t in encode_document(d)], dtype=np.uint16)


def test_stats_of_a_good_shard(make_shard, capsys):
    path = make_shard(_tokens(), name="good_000000.bin")
    lengths = [len(encode_document(d)) - 1 for d in DOCS]
    stats = shard_stats(path)
    assert stats["tokens"] == len(_tokens()) and stats["documents"] == 3 and stats["lead"] == 0
    assert stats["lengths"].tolist() == lengths and stats["max_id"] == EOT
    assert inspect_shards([str(path)], preview_tokens=5) == 0
    out = capsys.readouterr().out
    assert f"ok: {sum(lengths) + 3:,} tokens" in out
    assert (f"documents: 3 (<|endoftext|> markers); tokens per document: min {min(lengths)}, "
            f"median {np.median(lengths):.1f}, mean {np.mean(lengths):.1f}, max {max(lengths)}") in out
    assert f"token ids: {int(_tokens().min())}..50256" in out
    # the preview is the first document's first 5 tokens, repr-quoted (its newline shows as \n)
    assert f"first document (5 tokens, {lengths[0] - 5} more): 'Hello world, this is'" in out
    assert "1 of 1 file ok" in out
    assert inspect_shards([str(path), str(path)]) == 0  # named twice: shown and counted once
    out = capsys.readouterr().out
    assert out.count("\n  ok: ") == 1 and "1 of 1 file ok" in out


def test_preview_is_repr_safe_and_whole_when_short(make_shard, capsys):
    path = make_shard(_tokens(["line\nbreak\ttab \x1b[31m"]), name="ctl.bin")
    assert inspect_shards([str(path)]) == 0
    out = capsys.readouterr().out
    assert "'line\\nbreak\\ttab \\x1b[31m'" in out and "\x1b" not in out


def test_shard_starting_mid_document_and_without_markers(make_shard, capsys):
    toks = _tokens()
    mid = make_shard(toks[4:], name="mid.bin")  # as FineWeb train shards after the first: cut mid-document
    stats = shard_stats(mid)
    assert stats["lead"] == int(np.flatnonzero(toks == EOT)[1]) - 4 and stats["documents"] == 2
    plain = make_shard(toks[1:6], name="plain.bin")
    empty = make_shard(np.zeros(0, dtype=np.uint16), name="empty.bin")
    assert inspect_shards([str(mid), str(plain), str(empty)]) == 0
    out = capsys.readouterr().out
    assert "tokens before the first <|endoftext|>" in out
    assert "no <|endoftext|> token" in out and "first tokens (5 tokens)" in out
    assert "empty shard" in out and "3 of 3 files ok" in out


def test_corrupt_shards_among_good_ones_are_each_named(make_shard, tmp_path, capsys):
    good1 = make_shard(_tokens(), name="a_good.bin")
    truncated = make_shard(_tokens(), name="b_truncated.bin")
    truncated.write_bytes(truncated.read_bytes()[:-10])
    magic = tmp_path / "c_magic.bin"
    magic.write_bytes(b"\x00" * 2048)
    vocab = make_shard(np.array([EOT, 10, 60000, 5], dtype=np.uint16), name="d_vocab.bin")
    good2 = make_shard(_tokens(DOCS[:1]), name="e_good.bin")
    code = inspect_shards([str(tmp_path / "*.bin"), str(tmp_path / "nothing_*.bin")])
    out = capsys.readouterr().out
    assert code == 1
    bad = [l for l in out.splitlines() if l.startswith("BAD ")]
    assert len(bad) == 4, out
    assert any(str(truncated) in l and "truncated" in l for l in bad)
    assert any(str(magic) in l and "bad magic" in l for l in bad)
    # the same check (and message) as read_shard when training opens a shard
    assert any(str(vocab) in l and "token id 60000 at position 2 is >= the vocabulary size 50257" in l for l in bad)
    assert any("nothing_*.bin" in l and "matches no shard files" in l for l in bad)
    assert f"{good1}\n  ok:" in out and f"{good2}\n  ok:" in out  # checking went on past the bad files
    assert "2 of 5 files ok" in out and "4 problems" in out


def test_cli_on_the_bundled_demo_shards(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))  # this checkout, whatever the editable install points at
    proc = subprocess.run([sys.executable, "-m", "speedrun", "data", "inspect", str(DEMO_DIR / "*.bin"),
                           "--preview", "20"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("demo_train_000000.bin", "demo_val_000000.bin"):
        assert f"{name}\n  ok:" in proc.stdout
    assert "first document (20 tokens" in proc.stdout and "2 of 2 files ok" in proc.stdout
    bad = tmp_path / "bad.bin"
    bad.write_bytes((DEMO_DIR / "demo_val_000000.bin").read_bytes()[:3000])
    proc = subprocess.run([sys.executable, "-m", "speedrun", "data", "inspect", str(DEMO_DIR), str(bad)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert f"BAD {bad}: truncated" in proc.stdout and "2 of 3 files ok" in proc.stdout


def test_a_folder_whose_shards_are_in_subfolders_says_so(make_shard, tmp_path, capsys):
    """inspect, as training, reads a folder's own *.bin files; shards one level down were `matches no shard files`,
    as if there were none."""
    for sub in ("a", "b"):
        (tmp_path / "my data" / sub).mkdir(parents=True)
        make_shard(_tokens(), folder=tmp_path / "my data" / sub)
    assert inspect_shards([str(tmp_path / "my data")]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (f"BAD {tmp_path / 'my data'}: no shard files in the folder (2 "
                                                       f"in its subfolders: name one, e.g. {tmp_path / 'my data' / 'a'})")
    assert inspect_shards([str(tmp_path / "my data" / "a")]) == 0
