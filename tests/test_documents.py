"""What `speedrun data tokenize` reads: with `--txt-docs`, one .txt file divided into documents at its lines, blank
lines or <|endoftext|> markers, so that one large text still gives a val shard of whole documents and a next
command; text and JSON lines compressed with gzip, xz or bzip2, read as they decompress; `--val-from`, a
dataset's own validation split as the val shard; and `--text-field`, documents under another name."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_tokenize import REPO_DIR, _expected, _split_docs, _stream, _write_parquet

import speedrun.data.documents as documents
import speedrun.data.tokenize as tokenize
from speedrun.cli import main
from speedrun.data.shards import read_shard
from speedrun.data.tokenize import TokenizeError, tokenize_files
from speedrun.recipe import load_recipe
from speedrun.run_data import check_run_data, data_folder_overrides

# a TinyStories-style dump: documents between <|endoftext|> markers, each on lines of its own
STORIES = ["Once upon a time there was a cat.\nIt sat on a mat.", "Lily liked red <b>balls</b>.",
           "The end came fast. \"Bye!\" said Tom."]
EOT_TEXT = "\n<|endoftext|>\n".join(STORIES) + "\n<|endoftext|>\n"


@pytest.mark.parametrize("mode, text, docs", [
    ("eot", EOT_TEXT, STORIES),
    ("eot", "<|endoftext|>a<|endoftext|><|endoftext|> b <|endoftext|>", ["a", " b "]),  # spaces are text
    # paragraphs: blank lines (also of spaces, also CRLF) divide; a single line break and an indent do not
    ("paragraphs", "\n\nFirst para\n  goes on.\n\n\n  Indented second.\r\n \r\nThird\n",
     ["First para\n  goes on.", "  Indented second.", "Third"]),
    ("lines", "one\r\ntwo  \n\n   \nthree", ["one", "two  ", "three"]),
    # the default: the whole file is one document, a marker in it ordinary text (as before --txt-docs)
    ("file", EOT_TEXT, [EOT_TEXT]),
])
def test_a_txt_file_divides_into_the_documents_of_its_mode(tmp_path, mode, text, docs):
    src = tmp_path / "in.txt"
    src.write_bytes(text.encode())
    summary = tokenize_files([str(src)], str(tmp_path / "out"), val_tokens=0, workers=1, txt_docs=mode)
    tokens = _stream(tmp_path / "out")
    np.testing.assert_array_equal(tokens, _expected(docs))
    assert _split_docs(tokens) == docs and summary["documents"] == len(docs)


def test_one_large_text_gets_a_val_shard_and_the_command_to_train_on_it(tmp_path, capsys):
    src = tmp_path / "book.txt"
    src.write_text("".join(f"Paragraph {i}: " + "some words, " * (i % 9 + 1) + "end.\n\n" for i in range(600)))
    out = tmp_path / "my data"  # a space: the printed command quotes its paths
    tokenize_files([str(src)], str(out), workers=1)
    said = capsys.readouterr().out
    assert "no val shard" in said and "--txt-docs lines, paragraphs or eot" in said  # one document: what to do
    assert "train on them" not in said

    summary = tokenize_files([str(src)], str(out), workers=1, txt_docs="paragraphs")
    said = capsys.readouterr().out
    assert 0 < summary["val_documents"] < 600 and summary["val_documents"] + summary["train_documents"] == 600
    assert summary["val_tokens"] >= summary["tokens"] / 10  # the default: a tenth, in whole documents
    (command,) = [line for line in said.splitlines() if line.startswith("train on them: ")]
    words = shlex.split(command.removeprefix("train on them: "))
    assert words[:6] == ["speedrun", "train", "--recipe", "tiny", "--data", str(out)]
    sets = words[7::2]
    assert words[6::2] == ["--set"] * len(sets) and len(sets) == 2  # tiny's 8,192 val tokens do not fit: rows that do
    data = check_run_data(load_recipe("tiny", data_folder_overrides(words[5], sets) + sets))  # what training checks
    assert data.train_files == [out / "data_train_000000.bin"] and data.val_files == [out / "data_val_000000.bin"]

    tokenize_files([str(src)], str(out), workers=1, txt_docs="paragraphs", val_tokens=8193)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"train on them: speedrun train --recipe tiny --data {shlex.quote(str(out))}"  # tiny's rows fit
def test_same_bytes_for_one_and_two_workers_with_many_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenize, "BATCH_CHARS", 200)  # a few paragraphs a batch: many batches in flight
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"line {i} " + "x y z " * (i % 7) for i in range(500)))
    outs = [tmp_path / f"w{w}" for w in (1, 2)]
    for w, out in zip((1, 2), outs):
        tokenize_files([str(src)], str(out), workers=w, txt_docs="lines", shard_tokens=1000)
    names = sorted(p.name for p in outs[0].iterdir())
    assert len(names) > 3 and names == sorted(p.name for p in outs[1].iterdir())
    assert all((outs[0] / n).read_bytes() == (outs[1] / n).read_bytes() for n in names)
    assert len(_split_docs(_stream(outs[0]))) == 500


def test_a_file_of_separators_only_is_a_one_line_error_and_writes_nothing(tmp_path):
    src = tmp_path / "marks.txt"
    src.write_text("<|endoftext|>\n\n<|endoftext|>  \n")
    with pytest.raises(TokenizeError, match=r"marks.txt: no documents \(--txt-docs eot: only separators"):
        tokenize_files([str(src)], str(tmp_path / "out"), txt_docs="eot")
    assert not (tmp_path / "out").exists()
    with pytest.raises(TokenizeError, match="--txt-docs 'pages': must be one of file, lines, paragraphs, eot"):
        tokenize_files([str(src)], str(tmp_path / "out"), txt_docs="pages")


def test_cli_takes_the_mode_and_refuses_an_unknown_one(tmp_path):
    src = tmp_path / "stories.txt"
    src.write_text(EOT_TEXT * 4)
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))  # this checkout, whatever the editable install points at
    run = lambda *args: subprocess.run([sys.executable, "-m", "speedrun", "data", "tokenize", str(src), "--out",
                                        str(tmp_path / "o"), *args], capture_output=True, text=True, env=env,
                                       timeout=120)
    ok = run("--txt-docs", "eot")
    assert ok.returncode == 0, ok.stderr
    assert "12 documents" in ok.stdout  # and a val shard of 17 tokens, too small for any validation row: said so
    assert "too small for validation rows of 128 tokens; the input holds 168 tokens in all, too few" in ok.stdout
    assert _split_docs(_stream(tmp_path / "o")) == STORIES * 4
    bad = run("--txt-docs", "pages")
    assert bad.returncode == 2 and "invalid choice: 'pages'" in bad.stderr


COMPRESSORS = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}


@pytest.mark.parametrize("ext", list(COMPRESSORS))
def test_compressed_text_and_json_lines_give_the_bytes_of_the_plain_files(tmp_path, ext):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    for folder in (plain, packed):
        folder.mkdir()
    lines = "".join(json.dumps({"text": s}) + "\n" for s in STORIES * 3)
    for name, text in (("a.jsonl", lines), ("b.txt", EOT_TEXT)):
        (plain / name).write_text(text)
        (packed / (name + ext)).write_bytes(COMPRESSORS[ext](text.encode()))
    (packed / "c.parquet.gz").write_bytes(b"Parquet compresses inside; skipped, not read")
    results = [tokenize_files([str(folder)], str(tmp_path / f"out-{folder.name}"), workers=1, txt_docs="eot",
                              val_tokens=20) for folder in (plain, packed)]
    assert results[0]["documents"] == results[1]["documents"] == 12
    names = sorted(p.name for p in (tmp_path / "out-plain").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out-packed").iterdir())
    assert all((tmp_path / "out-plain" / n).read_bytes() == (tmp_path / "out-packed" / n).read_bytes() for n in names)


@pytest.mark.parametrize("name, data, error", [
    ("cut.jsonl.gz", gzip.compress(b'{"text": "one"}\n{"text": "two"}\n' * 200)[:-30], r"cut.jsonl.gz: line \d+: "
     r"cannot read it \(Compressed file ended before the end-of-stream marker was reached\)$"),
    ("bad.txt.xz", b"not xz at all", r"bad.txt.xz: cannot read it \(Input format not supported by decoder\)$"),
    ("bad.txt.gz", b"not gzip", r"bad.txt.gz: cannot read it \(Not a gzipped file \(b'no'\)\)$"),
    ("rows.parquet.gz", b"", r"rows.parquet.gz: unsupported file type '.parquet.gz'"),
])
def test_a_damaged_or_truncated_compressed_file_is_one_line_and_writes_nothing(tmp_path, name, data, error):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(TokenizeError, match=error):
        tokenize_files([str(tmp_path / name)], str(tmp_path / "out"), workers=1)
    assert not (tmp_path / "out").exists()


def test_val_from_makes_the_val_shard_of_all_its_documents_and_train_of_all_the_inputs(tmp_path, capsys):
    (tmp_path / "valid").mkdir()
    (tmp_path / "train.txt").write_text(EOT_TEXT * 5)
    (tmp_path / "valid" / "a.txt").write_text("Valid story one.<|endoftext|>Valid story two.")
    (tmp_path / "valid" / "b.jsonl").write_text(json.dumps({"text": "Valid three."}) + "\n")
    out = tmp_path / "out"
    assert main(["data", "tokenize", str(tmp_path / "train.txt"), "--txt-docs", "eot", "--val-from",
                 str(tmp_path / "valid"), "-o", str(out), "--workers", "1"]) == 0
    said = capsys.readouterr().out
    assert "val: the 3 documents of --val-from" in said and "train: the 15 documents of the inputs" in said
    val = _split_docs(np.asarray(read_shard(out / "data_val_000000.bin")))
    assert val == ["Valid story one.", "Valid story two.", "Valid three."]  # a.txt, then b.jsonl: sorted paths
    assert _split_docs(np.asarray(read_shard(out / "data_train_000000.bin"))) == STORIES * 5  # none kept back


def test_val_from_refuses_a_file_that_is_also_an_input_and_a_val_size(tmp_path):
    src = tmp_path / "all.txt"
    src.write_text(EOT_TEXT)
    with pytest.raises(TokenizeError, match=r"all.txt: both an input and --val-from; validation would score tokens"):
        tokenize_files([str(src)], str(tmp_path / "out"), val_from=[str(tmp_path)])  # the folder holds all.txt
    with pytest.raises(TokenizeError, match=r"^--val-from and --val-tokens: give one"):
        tokenize_files([str(src)], str(tmp_path / "out"), val_from=[str(src)], val_tokens=100)
    assert not (tmp_path / "out").exists()


def test_text_field_reads_documents_under_another_name(tmp_path, capsys):
    code = ["def f():\n    return 1\n", "class A:\n    pass\n", "x = [i for i in range(3)]\n"]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps({"content": c, "text": "not this"}) + "\n"
                                                 for c in code[:2]))
    _write_parquet(tmp_path / "more.parquet", code[2:], column="content")
    inputs = [str(tmp_path / "code.jsonl"), str(tmp_path / "more.parquet")]
    tokenize_files(inputs, str(tmp_path / "out"), val_tokens=0, workers=1, text_field="content")
    assert _split_docs(_stream(tmp_path / "out")) == code
    # the default field, missing in the Parquet file: the error says how to read another
    with pytest.raises(TokenizeError, match=r'more.parquet: no "text" column \(columns: content, id\); '
                                            r"--text-field NAME reads another$"):
        tokenize_files(inputs, str(tmp_path / "o2"), workers=1)
    assert main(["data", "tokenize", inputs[0], "-o", str(tmp_path / "o3"), "--text-field", "body"]) == 2
    assert capsys.readouterr().err.strip().endswith('code.jsonl: line 1: no "body" field (fields: content, text)')
    assert not any((tmp_path / o).exists() for o in ("o2", "o3"))


@pytest.mark.parametrize("docs, val_from, advice", [
    (40, False, "give --val-tokens 129 or more"),  # about 700 tokens: room for 129, not for tiny's 8,193
    (2000, False, "give --val-tokens 8193 (tiny's own validation) or at least 129"),
    (2000, True, "give --val-from documents of at least 129 tokens (8,193 for tiny's own validation)"),
])
def test_a_small_val_shard_gets_advice_that_works(tmp_path, capsys, docs, val_from, advice):
    """The advice for a val shard too small for one row fits the input: --val-tokens is refused beside --val-from,
    and a size the input cannot hold besides some training would only fail next."""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"Line {i} of the text." for i in range(docs)) + "\n")
    (tmp_path / "val.txt").write_text("Hi.\n")
    extra = dict(val_from=[str(tmp_path / "val.txt")]) if val_from else dict(val_tokens=12)
    tokenize_files([str(src)], str(tmp_path / "out"), workers=1, txt_docs="lines", **extra)
    out = capsys.readouterr().out
    assert "too small for validation rows of 128 tokens; " + advice in out
    assert " KB of text)" in out  # a small input's size, not "0.0 MB"
    if not val_from:  # following it works
        number = int(advice.split("--val-tokens ")[1].split()[0])
        tokenize_files([str(src)], str(tmp_path / "out2"), workers=1, txt_docs="lines", val_tokens=number)
        assert "too small" not in capsys.readouterr().out


def test_read_position_follows_each_format_on_disk(tmp_path, monkeypatch):
    """The tokenize bar's count: bytes on disk read so far (compressed bytes for a compressed file, the share of rows
    for Parquet), never past a file's size, never going back, and at the end the inputs' sizes on disk."""
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcdefgh ijk"), 300)) for _ in range(600)]  # ~180 KB: many buffer reads
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl.xz", tmp_path / "c.txt.gz",
             _write_parquet(tmp_path / "d.parquet", texts, row_group_size=100)]
    files[0].write_bytes(lines)
    files[1].write_bytes(lzma.compress(lines))
    files[2].write_bytes(gzip.compress("\n".join(texts).encode()))
    monkeypatch.setattr(documents, "PARQUET_BATCH_ROWS", 100)
    position = tokenize.ReadPosition()
    seen, sizes, count = [], [f.stat().st_size for f in files], 0
    for _ in tokenize.iter_documents(files, "lines", "text", position):
        count += 1
        seen.append(position.bytes)
    assert count == 4 * len(texts)
    assert seen == sorted(seen) and position.bytes == sum(sizes)
    # within each file the count moves before its end, and stays within the file; a .txt file, read whole before it
    # is divided, by the share of its text handed out as documents
    for i in range(4):
        mine = seen[i * len(texts):(i + 1) * len(texts)]
        assert sum(sizes[:i]) <= mine[0] < mine[len(mine) // 2] < mine[-1] <= sum(sizes[:i + 1])


@pytest.mark.parametrize("content, error", [
    (b'{"text": "a\x01b"}\n', r"line 1: not valid JSON \(Invalid control character at column 12\)$"),  # one "at"
    (b'"just a string"\n', r"line 1: expected a JSON object with a \"text\" field, got a string$"),
    (b'[{"text": "a"}, {"text": "b"}]\n', r"line 1: expected a JSON object with a \"text\" field, got an array; "
                                          r"expected JSON lines \(one object per line\), not a JSON array$"),
])
def test_json_lines_errors_say_what_the_line_holds(tmp_path, content, error):
    (tmp_path / "in.json").write_bytes(content)
    with pytest.raises(tokenize.TokenizeError, match=error):
        list(tokenize.iter_documents([tmp_path / "in.json"]))


def test_a_quoted_glob_names_its_files_as_inspect_and_train_take_it(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    for name in ("b.jsonl", "a.jsonl", "c.txt"):
        (tmp_path / "in" / name).write_text('{"text": "x"}\n' if name.endswith("jsonl") else "x")
    monkeypatch.chdir(tmp_path)
    assert documents.expand_inputs(["in/*.jsonl"]) == [Path("in/a.jsonl"), Path("in/b.jsonl")]  # sorted
    assert documents.expand_inputs([str(tmp_path / "in" / "[bc].*")]) == [tmp_path / "in" / "b.jsonl",
                                                                          tmp_path / "in" / "c.txt"]
    repeated = []  # named twice, once by the glob: read once
    assert documents.expand_inputs(["in/a.jsonl", "in/*.jsonl"], repeated=repeated) == [Path("in/a.jsonl"),
                                                                                        Path("in/b.jsonl")]
    assert repeated == [Path("in/a.jsonl")]
    with pytest.raises(TokenizeError, match=r"^in/\*\.parquet: matches no files$"):
        documents.expand_inputs(["in/*.parquet"])
