"""`speedrun data tokenize`, what it leaves and says: one whole set of shards also when a signal comes while they are
moved into place, progress that follows the tokenizing, notes on a large val share, and wording."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import killed_mid_write

from speedrun.data import tokenize as tk
from speedrun.data.tokenize import TokenizeError, tokenize_files
from speedrun.errors import Terminated, terminate_on_sigterm


def _texts(folder, n: int = 6):
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.txt").write_text(f"document number {i}, some words to tokenize. " * 10)
    return str(folder)


def _contents(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_moving_shards_into_place_leaves_one_whole_set(signum, tmp_path, monkeypatch):
    src, out, ref = _texts(tmp_path / "in"), tmp_path / "out", tmp_path / "ref"
    tokenize_files([src], str(out), shard_tokens=100, workers=1)  # 7 shards, to be replaced by 2
    tokenize_files([src], str(ref), shard_tokens=10_000, workers=1)
    replace, calls = os.replace, []

    def replace_then_signal(src, dst):
        replace(src, dst)
        if os.path.dirname(dst) == str(out):  # a move into place (write_shard's own replace is within the temp folder)
            calls.append(dst)
            if len(calls) == 2:
                os.kill(os.getpid(), signum)  # as a Ctrl-C or a `timeout` would, between two moves

    previous = signal.getsignal(signal.SIGTERM)
    terminate_on_sigterm()  # as the CLI runs it: SIGTERM raises Terminated (exit 143)
    monkeypatch.setattr(os, "replace", replace_then_signal)
    try:
        with pytest.raises(Terminated if signum == signal.SIGTERM else KeyboardInterrupt):
            tokenize_files([src], str(out), shard_tokens=10_000, workers=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(calls) == 2
    assert _contents(out) == _contents(ref)  # the new set whole, none of the old, no temporary folder
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_progress_on_a_txt_file_follows_its_documents(tmp_path, capsys, monkeypatch):
    # the file is read whole before it is divided: the share read must follow the documents handed out, not jump
    src = tmp_path / "lines.txt"
    src.write_text("".join(f"line {i} of a text divided into documents at its lines\n" for i in range(2000)))
    monkeypatch.setattr(tk, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(tk, "BATCH_CHARS", 4000)
    tokenize_files([str(src)], str(tmp_path / "out"), txt_docs="lines", workers=1)
    lines = capsys.readouterr().err.splitlines()
    shares = [int(re.search(r"; (\d+)% of the input read", line)[1]) for line in lines]
    assert len(shares) > 5 and shares == sorted(shares) and shares[-1] == 100
    assert any(re.search(r"; [1-9]\d?% of the input read, about [\d,]+s left$", line) for line in lines)


def test_a_val_shard_of_most_tokens_gets_a_note_with_the_fix(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("a long first document, " * 100)
    (tmp_path / "b.txt").write_text("a short one")
    s = tokenize_files([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(tmp_path / "o1"), workers=1)
    said = capsys.readouterr().out
    assert (f"note: the val shard holds {s['val_tokens'] / s['tokens']:.0%} of the tokens ({s['val_tokens']:,} of "
            f"{s['tokens']:,}), leaving {s['train_tokens']:,} to train on: val takes whole documents from the start; "
            f"give --txt-docs lines, paragraphs or eot to divide the .txt files into smaller documents\n") in said
    assert "val: the first document, " in said  # not "the first 1 document"
    docs = tmp_path / "d.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["short", "a longer one " * 50, "end"]))
    tokenize_files([str(docs)], str(tmp_path / "o2"), val_tokens=5, workers=1)
    assert "; give a smaller --val-tokens, so val takes fewer of its 2 documents\n" in capsys.readouterr().out
    tokenize_files([str(docs)], str(tmp_path / "o3"), txt_docs="lines", workers=1)  # the default's 10%: 2 documents
    said = capsys.readouterr().out  # no .txt input: no --txt-docs
    assert said.count("note: the val shard holds") == 1 and "of its 2 documents\n" in said and "--txt-docs" not in said
    docs2 = tmp_path / "e.jsonl"
    docs2.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["a longer one " * 50, "end"]))
    tokenize_files([str(docs2)], str(tmp_path / "o4"), workers=1)
    assert "the start; give more documents, or put a small one first\n" in capsys.readouterr().out
    with pytest.raises(TokenizeError, match=r"^.*: all 3 documents \(\d+ tokens\) went to the val shard \(--val-tokens "
                                            r"1,000\); nothing left to train on; give a smaller --val-tokens, so val "
                                            r"takes fewer of its 3 documents$"):
        tokenize_files([str(docs)], str(tmp_path / "o5"), val_tokens=1000, workers=1)
    with pytest.raises(TokenizeError, match=r": the one document \(\d+ tokens\) went to the val shard .*; give "
                                            r"--txt-docs lines, paragraphs or eot to divide the \.txt files into "
                                            r"smaller documents$"):
        tokenize_files([str(tmp_path / "a.txt")], str(tmp_path / "o6"), val_tokens=1000, workers=1)


def test_a_full_disk_names_the_shard_in_the_output_folder(tmp_path, monkeypatch):
    real = tk.write_shard

    def full(path, tokens):
        if "_train_" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, tokens)

    monkeypatch.setattr(tk, "write_shard", full)
    out = tmp_path / "out"
    with pytest.raises(OSError) as info:
        tokenize_files([_texts(tmp_path / "in")], str(out), workers=1)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(out / "data_train_000000.bin"))
    assert not out.exists()


def test_a_tiny_input_says_its_size_in_bytes(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("hi")
    tokenize_files([str(tmp_path / "a.txt")], str(tmp_path / "out"), workers=1)
    said = capsys.readouterr().out
    assert "1 document (2 bytes of text) into 2 tokens in " in said and " 0.0 MB/s" not in said
    assert re.search(r"s \([\d,.]+ (bytes|KB|MB)/s, ", said)


def test_a_killed_tokenizings_hidden_folder_is_removed_by_the_next(tmp_path, capsys):
    """A tokenize killed outright (SIGKILL, out of memory) leaves its hidden work folder of shards in --out; the next
    tokenize into that folder removes it and says so, and leaves only its own shards."""
    out = tmp_path / "out"
    out.mkdir()
    proc, left = killed_mid_write(out, folder_too=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    work = next(p for p in left if p.is_dir())
    tokenize_files([_texts(tmp_path / "in")], str(out), workers=1)
    printed = capsys.readouterr().out
    assert f"note: removed {work} (0.0 MiB), a tokenizing folder that a killed run left half-written" in printed
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_the_train_command_is_given_only_where_tiny_would_take_the_shards(tmp_path, capsys):
    """One large document and a short one: val took the large one, train the short one's 2 tokens, and the command
    printed to train on them failed (`NOT READY`). The hint passes the same data check as `train --dry-run`."""
    src = tmp_path / "big.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["many words here " * 1500, "hi"]))
    out = tmp_path / "obig"
    tokenize_files([str(src)], str(out), workers=1)
    said = capsys.readouterr().out
    assert "train on them" not in said
    assert said.splitlines()[-1].startswith(
        f"note: no train command: tiny would refuse these shards ({out}/data_train_000000.bin: no shard holds a "
        f"whole train batch of 1,024 tokens and its next-token targets (needs 1,025; largest: 2 tokens); "), said
    assert said.splitlines()[-1].endswith("; give more documents, or put a small one first"), said
    # the short one first: train gets the large one, and the command (its val rows shortened) is given
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["hello there, " * 200, "many words here " * 1500]))
    tokenize_files([str(src)], str(out), workers=1)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"train on them: speedrun train --recipe tiny --data "
                                                               f"{out} --set val_seq_len=")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are forked (and so slowed) on Linux only")
def test_workers_of_a_killed_tokenize_exit_without_a_traceback(tmp_path):
    """After a SIGKILL of `data tokenize` the pool's workers wrote their results to a pipe nobody reads any more:
    each printed a BrokenPipeError traceback to the terminal. They end quietly instead."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"document {i}: " + "some words " * 200}) + "\n" for i in range(400)))
    started = tmp_path / "started"
    started.mkdir()
    # a slow BPE (forked workers inherit it), so the kill comes while every worker holds a batch
    script = textwrap.dedent(f"""
        import os, sys, time
        from speedrun.cli import main
        from speedrun.data import tokenize as tk
        encode = tk.encode_document
        def slow(text):
            open(os.path.join({str(started)!r}, str(os.getpid())), "a").close()
            time.sleep(0.01)
            return encode(text)
        tk.encode_document = slow
        sys.exit(main(["data", "tokenize", {str(src)!r}, "--out", {str(tmp_path / "out")!r}, "--workers", "2"]))
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.name) for p in started.iterdir()]
    assert len(workers) == 2 and proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    # the workers hold the pipes too: their end is the end of the output
    out, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"Error" not in err, err.decode()
    # and they end: gone, or a zombie where nothing reaps orphans (closing their pipes came just before)
    deadline = time.monotonic() + 30
    while not all(map(_ended, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_ended, workers))


def _ended(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
