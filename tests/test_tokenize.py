"""`speedrun data tokenize`: text / JSON lines / Parquet -> shards equal to GPT-2 BPE of each document,
deterministic across worker counts, val split (explicit and default) and shard cutting, and clear errors
(bad or empty input, an unusable --out) that write nothing."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from speedrun import files
from speedrun.data import tokenize as tk
from speedrun.data.shards import ShardError, read_shard
from speedrun.data.tokenize import TokenizeError, tokenize_files
from speedrun.data.tokenizer import EOT, decode, encode_document
from speedrun.errors import SpeedrunError, _raise_terminated, terminate_on_sigterm
from speedrun.run_data import data_folder_overrides

REPO_DIR = Path(__file__).resolve().parents[1]

TXT_DOCS = [
    "The quick brown fox jumps over the lazy dog.\r\nWindows line ends, tabs\tand   spaces.\n",
    "Unicode: café, Zürich, Ελληνικά, русский, 日本語, emoji 🚀👍🏽 — dashes – and “quotes”.",
]
JSONL_DOCS = [
    "First JSON document. It's 3:45pm; pi ~ 3.14159.",
    "  spaces around a short one  ",  # kept as written (an empty or blank "text" is an error, as an empty .txt)
    "<|endoftext|> written as text is ordinary text, not a document boundary.",
    "Line one\nline two\n\n   indented line three " * 40,
]
PARQUET_DOCS = [f"Parquet row {i}: {'some words here and there, ' * (i + 1)}end." for i in range(5)]


def _write_parquet(path: Path, texts, column: str = "text", row_group_size: int = 2) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({column: pa.array(texts, pa.string()), "id": pa.array(range(len(texts)), pa.int64())})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture
def corpus(tmp_path):
    """(inputs, documents in reading order): a folder of .txt files, a .jsonl file and a .parquet file."""
    src = tmp_path / "src"
    (src / "texts" / "sub").mkdir(parents=True)
    # folder order is sorted by path: a.txt, then sub/b.txt
    (src / "texts" / "a.txt").write_bytes(TXT_DOCS[0].encode())
    (src / "texts" / "sub" / "b.txt").write_bytes(TXT_DOCS[1].encode())
    (src / "texts" / "notes.md").write_text("not an input type; skipped inside folders")
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(JSONL_DOCS)]
    (src / "docs.jsonl").write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")  # blank line skipped
    _write_parquet(src / "rows.parquet", PARQUET_DOCS)
    inputs = [str(src / "texts"), str(src / "docs.jsonl"), str(src / "rows.parquet")]
    return inputs, TXT_DOCS + JSONL_DOCS + PARQUET_DOCS


def _expected(docs) -> np.ndarray:
    return np.array([t for d in docs for t in encode_document(d)], dtype=np.uint16)


def _stream(out: Path, name: str = "data") -> np.ndarray:
    files = sorted(out.glob(f"{name}_val_*.bin")) + sorted(out.glob(f"{name}_train_*.bin"))
    return np.concatenate([np.asarray(read_shard(f)) for f in files])


def _split_docs(tokens) -> list[str]:
    tokens = [int(t) for t in tokens]
    starts = [i for i, t in enumerate(tokens) if t == EOT] + [len(tokens)]
    assert starts[0] == 0, "a stream starts with <|endoftext|>"
    return [decode(tokens[a + 1:b]) for a, b in zip(starts, starts[1:])]


def test_tokens_equal_bpe_of_each_document(corpus, tmp_path, capsys):
    inputs, docs = corpus
    out = tmp_path / "out"
    summary = tokenize_files(inputs, str(out), val_tokens=0, workers=1)
    assert "note: no val shard written" in capsys.readouterr().out  # --val-tokens 0: none, and said so
    assert sorted(p.name for p in out.iterdir()) == ["data_train_000000.bin"]
    tokens = read_shard(out / "data_train_000000.bin")
    expected = _expected(docs)
    np.testing.assert_array_equal(tokens, expected)
    assert summary["documents"] == len(docs) == int((tokens == EOT).sum())
    assert summary["tokens"] == len(expected)
    assert summary["bytes"] == sum(len(d.encode()) for d in docs)
    assert summary["files"] == [str(out / "data_train_000000.bin")]
    assert summary["seconds"] > 0


def test_a_file_named_twice_is_read_once(corpus, tmp_path, capsys):
    inputs, docs = corpus  # inputs[0] is a folder of .txt files: name one of them again, before and after the folder
    first = sorted(Path(inputs[0]).rglob("*.txt"))[0]
    s = tokenize_files([str(first)] + inputs + [str(first)], str(tmp_path / "out"), val_tokens=0, workers=1)
    assert "note: 2 input files named more than once" in capsys.readouterr().out
    assert s["documents"] == len(docs)  # each document once: none of val's can reappear in train


def test_a_second_name_in_one_folder_gets_its_own_train_command(tmp_path, capsys):
    src = _jsonl_corpus(tmp_path / "docs.jsonl")
    out = tmp_path / "out"
    tokenize_files([str(src)], str(out), workers=1)
    assert f"--data {out}" in capsys.readouterr().out
    tokenize_files([str(src)], str(out), name="v2", workers=1)
    said = capsys.readouterr().out
    assert "--data" not in said and f"--set 'train_files={out}/v2_train_[0-9]*.bin' --set 'val_files={out}/v2_val_[0-9]*.bin'" in said
    with pytest.raises(ShardError, match=r"holds the shards of 2 names \(data, v2\), which would train on all"):
        data_folder_overrides(str(out), [])


def test_redirected_stderr_gets_plain_progress_lines(tmp_path, capsys, monkeypatch):
    # under pytest stderr is not a terminal: no tqdm bar, and with the interval at 0 a line after every batch
    src = _jsonl_corpus(tmp_path / "docs.jsonl", n=400)  # ~70 KB, read in 8 KB buffers
    monkeypatch.setattr(tk, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(tk, "BATCH_CHARS", 4000)  # several batches, so lines part-way through
    s = tokenize_files([str(src)], str(tmp_path / "out"), workers=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(l.startswith("tokenizing: ") and "\r" not in l for l in lines)
    assert f"tokenizing: {s['documents']:,} documents, {s['tokens']:,} tokens" in lines[-1]
    assert lines[-1].endswith("; 100% of the input read")  # the share of the input's bytes, with the time left before
    assert any(re.search(r"; [1-9]\d?% of the input read, about [\d,]+s left$", line) for line in lines)
    monkeypatch.setattr(tk, "PROGRESS_EVERY_S", 3600.0)
    tokenize_files([str(src)], str(tmp_path / "out"), workers=1)
    assert capsys.readouterr().err == ""  # a short job in a log file: silent, as before


def test_round_trip_decode(corpus, tmp_path):
    inputs, docs = corpus
    tokenize_files(inputs, str(tmp_path / "out"), workers=1, shard_tokens=50, val_tokens=30)
    assert _split_docs(_stream(tmp_path / "out")) == docs


_TIKTOKEN_SCRIPT = textwrap.dedent("""
    import json, sys
    import tiktoken
    enc = tiktoken.get_encoding("gpt2")
    docs = json.load(open(sys.argv[1], encoding="utf-8"))
    print(json.dumps([[enc.eot_token] + enc.encode_ordinary(d) for d in docs]))
""")


def test_tokens_equal_tiktoken_registry_gpt2(corpus, tmp_path, shared_dir):
    """tiktoken.get_encoding("gpt2") itself (from the shared offline cache), in a clean subprocess."""
    cache_src = shared_dir / "tokenizer" / "tiktoken_cache"
    if not cache_src.is_dir():
        pytest.skip(f"{cache_src} is not present")
    cache = tmp_path / "tiktoken_cache"
    shutil.copytree(cache_src, cache)  # tiktoken may delete cache files it dislikes: never point it at shared/
    inputs, docs = corpus
    tokenize_files(inputs, str(tmp_path / "out"), val_tokens=0, workers=2)
    (tmp_path / "docs.json").write_text(json.dumps(docs), encoding="utf-8")
    (tmp_path / "ref.py").write_text(_TIKTOKEN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOKEN")}
    env["TIKTOKEN_CACHE_DIR"] = str(cache)
    proc = subprocess.run([sys.executable, str(tmp_path / "ref.py"), str(tmp_path / "docs.json")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ref = [t for doc in json.loads(proc.stdout) for t in doc]
    assert read_shard(tmp_path / "out" / "data_train_000000.bin").tolist() == ref


def test_same_bytes_for_one_and_two_workers(corpus, tmp_path, monkeypatch):
    # small batches so that two workers really split the work (and results could arrive out of order)
    monkeypatch.setattr(tk, "BATCH_CHARS", 100)
    inputs, _ = corpus
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        s = tokenize_files(inputs, str(out), workers=workers, val_tokens=40, shard_tokens=300)
        assert s["workers"] == workers
        runs[workers] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(runs[1]) >= 4
    assert runs[1] == runs[2]


def test_val_split_and_shard_cutting(corpus, tmp_path):
    inputs, docs = corpus
    lengths = [len(encode_document(d)) for d in docs]
    val_target, shard = lengths[0] + 3, 200  # more than the first document: val takes two whole documents
    out = tmp_path / "out"
    s = tokenize_files(inputs, str(out), val_tokens=val_target, shard_tokens=shard, workers=1, name="mine")
    val = read_shard(out / "mine_val_000000.bin")
    assert len(val) == lengths[0] + lengths[1] >= val_target
    assert s["val_documents"] == 2 and s["val_tokens"] == len(val)
    train_files = sorted(out.glob("mine_train_*.bin"))
    assert [p.name for p in train_files] == [f"mine_train_{i:06d}.bin" for i in range(len(train_files))]
    sizes = [len(read_shard(p)) for p in train_files]
    assert all(n == shard for n in sizes[:-1]) and 0 < sizes[-1] <= shard
    assert sum(sizes) == sum(lengths[2:]) == s["train_tokens"]
    assert read_shard(train_files[0])[0] == EOT  # train starts at a document boundary
    assert any(read_shard(p)[0] != EOT for p in train_files[1:]), "documents continue across shard cuts"
    np.testing.assert_array_equal(_stream(out, "mine"), _expected(docs))
    assert s["files"] == [str(out / "mine_val_000000.bin")] + [str(p) for p in train_files]


def test_one_document_larger_than_val_tokens(tmp_path):
    (tmp_path / "a.txt").write_text("one long first document " * 20)
    (tmp_path / "b.txt").write_text("second")
    s = tokenize_files([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(tmp_path / "out"), val_tokens=5,
                       workers=1)
    assert s["val_documents"] == 1 and s["val_tokens"] > 5  # whole documents only, never a cut one
    assert _split_docs(read_shard(tmp_path / "out" / "data_train_000000.bin")) == ["second"]


def test_everything_in_val_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("tiny")
    with pytest.raises(TokenizeError, match="nothing left to train on"):
        tokenize_files([str(tmp_path / "a.txt")], str(tmp_path / "out"), val_tokens=1000, workers=1)
    assert not (tmp_path / "out").exists()


def test_rerun_replaces_earlier_shards_of_that_name(corpus, tmp_path):
    inputs, docs = corpus
    out = tmp_path / "out"
    tokenize_files(inputs, str(out), shard_tokens=100, val_tokens=10, workers=1)
    (out / "other.bin").write_bytes(b"kept")
    s = tokenize_files(inputs, str(out), val_tokens=0, shard_tokens=10_000, workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["data_train_000000.bin", "other.bin"]
    assert s["replaced"] and (out / "other.bin").read_bytes() == b"kept"
    np.testing.assert_array_equal(read_shard(out / "data_train_000000.bin"), _expected(docs))


# ---------------------------------------------------------------------------------------------------------
# bad inputs: a one-line error naming the file (and line/row) and nothing written


def _bad_inputs(d: Path) -> dict:
    d.mkdir()
    cases = {}

    def case(key, filename, content, *fragments):
        path = d / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            content(path)
        cases[key] = (path, fragments)

    rng = np.random.default_rng(0)
    garbage = b"\xff\xfe\x00\x81" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    case("garbage_txt", "garbage.txt", garbage, "not UTF-8", "line 1")
    case("nul_txt", "nul.txt", b"text\nmore\x00\x00\x00", "NUL byte", "line 2")
    case("empty_txt", "empty.txt", b"", "empty file")
    case("blank_txt", "blank.txt", b" \n\n\t", "holds no text, only whitespace")
    case("bom_txt", "bom.txt", b"\xef\xbb\xbf", "empty file")
    case("unicode_blank_txt", "ideographic.txt", "\u3000\n\u00a0".encode(), "only whitespace")
    case("empty_jsonl", "empty.jsonl", b"\n\n", "no documents")
    case("empty_text_jsonl", "emptytext.jsonl", b'{"text": "ok"}\n\n{"text": ""}\n', "line 3", '"text" is empty')
    case("blank_text_jsonl", "blanktext.jsonl", b'{"text": " \\n\\t "}\n', "line 1", '"text" is only whitespace')
    case("parquet_empty_row", "emptyrow.parquet", lambda p: _write_parquet(p, ["a", "b", "c", ""]), "row 4",
         '"text" is empty')
    case("parquet_blank_row", "blankrow.parquet", lambda p: _write_parquet(p, ["a", "\n  "]), "row 2",
         "only whitespace")
    case("garbage_jsonl", "garbage.jsonl", b'{"text": "ok"}\n' + garbage, "line 2", "not UTF-8")
    case("bad_json", "bad.jsonl", b'{"text": "ok"}\n{"text": "unterminated\n', "line 2", "not valid JSON")
    case("no_text", "notext.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"body": "c", "id": 1}\n',
         "line 3", 'no "text" field', "body, id")
    case("text_not_str", "num.json", b'{"text": 42}\n', "line 1", "a number, not a string")
    case("not_object", "list.jsonl", b'["text"]\n', "line 1", "expected a JSON object")
    case("json_array", "array.json", b'[\n  {"text": "a"}\n]\n', "line 1", "not a JSON array")
    case("json_pretty", "pretty.json", b'{\n  "text": "a"\n}\n', "line 1", "not an object over several lines")
    case("parquet_no_column", "nocol.parquet", lambda p: _write_parquet(p, ["a", "b"], column="content"),
         'no "text" column', "content")
    case("parquet_int_column", "ints.parquet",
         lambda p: __import__("pyarrow.parquet").parquet.write_table(
             __import__("pyarrow").table({"text": [1, 2]}), p), "not string")
    case("parquet_null", "null.parquet", lambda p: _write_parquet(p, ["a", "b", None]), "row 3", "null")
    case("parquet_garbage", "garbage.parquet", garbage, "not a readable Parquet file")
    case("parquet_empty", "norows.parquet", lambda p: _write_parquet(p, []), "no documents")
    case("unsupported", "notes.md", b"# hello", "unsupported file type '.md'")
    case("missing", "missing.txt", None, "no such file or folder")
    return cases


BAD_KEYS = ["garbage_txt", "nul_txt", "empty_txt", "blank_txt", "bom_txt", "unicode_blank_txt", "empty_jsonl",
            "empty_text_jsonl", "blank_text_jsonl", "garbage_jsonl", "bad_json", "no_text", "text_not_str",
            "not_object", "json_array", "json_pretty", "parquet_no_column", "parquet_int_column", "parquet_null", "parquet_garbage",
            "parquet_empty", "parquet_empty_row", "parquet_blank_row", "unsupported", "missing"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_input_gives_one_line_error_and_writes_nothing(key, tmp_path, monkeypatch):
    monkeypatch.setattr(tk, "BATCH_CHARS", 100)  # so shards of the good file are written before the bad one is read
    path, fragments = _bad_inputs(tmp_path / "in")[key]
    good = tmp_path / "good.txt"
    good.write_text("a good document first, so that tokenizing has started when the bad file is read " * 50)
    out = tmp_path / "out"
    with pytest.raises(TokenizeError) as info:
        tokenize_files([str(good), str(path)], str(out), val_tokens=0, shard_tokens=64, workers=1)
    msg = str(info.value)
    assert isinstance(info.value, SpeedrunError)
    assert "\n" not in msg and len(msg) < 300
    assert msg.startswith(str(path)), msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    assert not out.exists(), "an error must leave no output folder behind"


def test_error_leaves_an_existing_output_folder_as_it_was(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(tk, "BATCH_CHARS", 100)
    inputs, _ = corpus
    out = tmp_path / "out"
    tokenize_files(inputs, str(out), shard_tokens=100, workers=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n')
    with pytest.raises(TokenizeError, match="line 2"):
        tokenize_files(inputs + [str(bad)], str(out), shard_tokens=50, workers=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp folder, no new or changed shards


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are forked on Linux only")
def test_workers_set_their_own_signal_handling_before_any_signal_reaches_them():
    # Regression: under the CLI's SIGTERM handler a worker forked with it could lose the SIGTERM of Pool.terminate
    # and then wait forever on the queue lock terminate holds (CI hung in a test whose input was an error).
    recording, at_fork = [True], []
    os.register_at_fork(before=lambda: recording[0] and at_fork.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    previous = signal.getsignal(signal.SIGTERM)
    terminate_on_sigterm()
    try:
        with tk._pool(2) as pool:
            # SIGTERM and Ctrl-C, also sent to the whole process group, are the parent's to handle: it stops them
            assert pool.map(signal.getsignal, [signal.SIGTERM] * 4, chunksize=1) == [signal.SIG_IGN] * 4
            assert pool.map(signal.getsignal, [signal.SIGINT] * 4, chunksize=1) == [signal.SIG_IGN] * 4
            unblocked = pool.starmap(signal.pthread_sigmask, [(signal.SIG_BLOCK, [])] * 4, chunksize=1)
            assert not any({signal.SIGINT, signal.SIGTERM} & mask for mask in unblocked)
        recording[0] = False
        # blocked from the fork on, until the worker ignores them
        assert len(at_fork) == 2 and all({signal.SIGINT, signal.SIGTERM} <= mask for mask in at_fork)
        assert signal.getsignal(signal.SIGTERM) is _raise_terminated  # this process keeps its handler
        assert not {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])  # and its mask
    finally:
        recording[0] = False
        signal.signal(signal.SIGTERM, previous)


def test_folder_without_inputs_and_bad_arguments(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.md").write_text("x")
    with pytest.raises(TokenizeError, match="folder holds no"):
        tokenize_files([str(tmp_path / "d")], str(tmp_path / "out"))
    (tmp_path / "a.txt").write_text("a")
    for kwargs, frag in [({"shard_tokens": 0}, "--shard-tokens"), ({"val_tokens": -1}, "--val-tokens"),
                         ({"workers": -2}, "--workers"), ({"name": "a/b"}, "--name")]:
        with pytest.raises(TokenizeError, match=frag):
            tokenize_files([str(tmp_path / "a.txt")], str(tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_tokenize_then_error(corpus, tmp_path):
    inputs, docs = corpus
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))  # this checkout, whatever the editable install points at
    ok = subprocess.run([sys.executable, "-m", "speedrun", "data", "tokenize", *inputs, "--out", str(tmp_path / "o"),
                         "--val-tokens", "10", "--workers", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "tokenized 4 files" in ok.stdout and "data_val_000000.bin" in ok.stdout
    np.testing.assert_array_equal(_stream(tmp_path / "o"), _expected(docs))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\nnot json\n')
    err = subprocess.run([sys.executable, "-m", "speedrun", "data", "tokenize", str(bad), "--out",
                          str(tmp_path / "o2")], capture_output=True, text=True, env=env, timeout=120)
    assert err.returncode == 2
    assert err.stderr.strip().splitlines() == [f"speedrun: error: {bad}: line 2: not valid JSON "
                                               f"(Expecting value at column 1)"]
    assert not (tmp_path / "o2").exists()


# ---------------------------------------------------------------------------------------------------------
# the default val shard (val_tokens=None): >= 10% of the tokens in whole documents, at most DEFAULT_VAL_MAX


def _jsonl_corpus(path: Path, n: int = 40) -> Path:
    texts = [f"Document {i}: " + "words of varying length " * (1 + (i * 7) % 13) for i in range(n)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_default_val_is_a_tenth_in_whole_documents_and_equals_the_explicit_value(tmp_path, capsys):
    src = _jsonl_corpus(tmp_path / "docs.jsonl")
    s = tokenize_files([str(src)], str(tmp_path / "default"), workers=1)
    lengths = np.cumsum([len(encode_document(json.loads(l)["text"])) for l in src.read_text().splitlines()])
    target = -(-s["tokens"] // 10)
    k = s["val_documents"]
    assert 0 < k < len(lengths) and s["val_tokens"] == lengths[k - 1] >= target > lengths[k - 2]
    assert (tmp_path / "default" / "data_val_000000.bin").exists()
    assert f"val: the first {k} documents, {s['val_tokens']:,} tokens" in capsys.readouterr().out
    tokenize_files([str(src)], str(tmp_path / "explicit"), val_tokens=s["val_tokens"], workers=1)
    assert _files(tmp_path / "default") == _files(tmp_path / "explicit")


def test_default_val_is_capped_and_decided_without_holding_all_input(tmp_path, monkeypatch):
    monkeypatch.setattr(tk, "DEFAULT_VAL_MAX", 60)  # cap 60 tokens: decided once 600 are held
    monkeypatch.setattr(tk, "BATCH_CHARS", 200)
    read, made_at = [0], []
    real_iter, real_sink = tk.iter_documents, tk._ShardSink

    def counting_iter(files, *how):
        for doc in real_iter(files, *how):
            read[0] += 1
            yield doc

    class SpySink(real_sink):
        def __init__(self, *a, **k):
            made_at.append(read[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(tk, "iter_documents", counting_iter)
    monkeypatch.setattr(tk, "_ShardSink", SpySink)
    src = _jsonl_corpus(tmp_path / "docs.jsonl", n=200)
    s = tokenize_files([str(src)], str(tmp_path / "default"), shard_tokens=500, workers=1)
    assert 60 <= s["val_tokens"] < s["tokens"] // 10  # the cap, not 10%
    assert made_at[0] < 200, "the split must be decided before the whole input is read"
    tokenize_files([str(src)], str(tmp_path / "explicit"), val_tokens=s["val_tokens"], shard_tokens=500, workers=1)
    assert _files(tmp_path / "default") == _files(tmp_path / "explicit")


def test_default_val_leaves_train_the_last_document(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("short first document")
    (tmp_path / "b.txt").write_text("a much longer second document " * 200)
    s = tokenize_files([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(tmp_path / "out"), workers=1)
    assert s["val_documents"] == 1 and s["train_documents"] == 1  # 10% is inside b: val keeps a, train gets b
    assert _split_docs(read_shard(tmp_path / "out" / "data_val_000000.bin")) == ["short first document"]
    capsys.readouterr()
    (tmp_path / "one.txt").write_text("a single document")  # one document: no val shard, and a note why
    s = tokenize_files([str(tmp_path / "one.txt")], str(tmp_path / "one"), workers=1)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["data_train_000000.bin"]
    assert s["val_tokens"] == 0 and s["train_documents"] == 1
    out = capsys.readouterr().out
    assert "note: no val shard written" in out and "one document" in out


# ---------------------------------------------------------------------------------------------------------
# an unusable --out: one line before any work, nothing written


def _expect_out_error(tmp_path, out, *fragments):
    (tmp_path / "a.txt").write_text("some text")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(TokenizeError) as info:
        tokenize_files([str(tmp_path / "a.txt")], str(out), workers=1)
    msg = str(info.value)
    assert msg.startswith(f"--out {out}: ") and "\n" not in msg, msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_out_is_a_file_or_below_one(tmp_path):
    (tmp_path / "afile").write_text("x")
    _expect_out_error(tmp_path, tmp_path / "afile", "exists and is not a folder")
    _expect_out_error(tmp_path, tmp_path / "afile" / "sub" / "deeper", f"{tmp_path / 'afile'} is a file, not a folder")


def test_out_not_writable(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()

    def refuse(path, *args, **kwargs):  # a folder without write permission (chmod would not stop root)
        if Path(path).parent == ro:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)
    monkeypatch.setattr("speedrun.files.open", refuse, raising=False)
    _expect_out_error(tmp_path, ro, f"no permission to write in {ro}")
    _expect_out_error(tmp_path, ro / "new" / "sub", f"no permission to write in {ro}")


def test_out_failing_at_creation_removes_the_folders_it_made(tmp_path, monkeypatch):
    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkdtemp", read_only)  # what os.access cannot foresee
    _expect_out_error(tmp_path, tmp_path / "new" / "out", "cannot write there (Read-only file system)")


def test_cli_out_below_a_file(tmp_path):
    (tmp_path / "a.txt").write_text("some text")
    (tmp_path / "afile").write_text("x")
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    proc = subprocess.run([sys.executable, "-m", "speedrun", "data", "tokenize", str(tmp_path / "a.txt"), "--out",
                           str(tmp_path / "afile" / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"speedrun: error: --out {tmp_path / 'afile' / 'o'}: "
                                                f"{tmp_path / 'afile'} is a file, not a folder"]
