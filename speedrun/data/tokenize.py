"""Your own text -> train/val token shards: plain text, JSON lines (`text` field), Parquet (`text` column).

Documents are read in input order (folders: their files recursively, sorted), tokenized with the bundled GPT-2
BPE (`<|endoftext|>` before each document) by a pool of processes, and the results are consumed in order, so
the shards are byte-identical whatever the worker count. Shards are written into a temporary folder inside
the output folder and moved into place only when every input has been read: an error leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from speedrun.data.shards import write_shard
from speedrun.data.tokenizer import encode_document, gpt2
from speedrun.errors import SpeedrunError

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES

# Work unit sent to a worker: documents up to this many characters (or documents). Large enough that pickling
# and scheduling cost little next to BPE, small enough that both cores stay busy on a few MB of input.
BATCH_CHARS = 256 * 1024
BATCH_DOCS = 4096
PARQUET_BATCH_ROWS = 1024


class TokenizeError(SpeedrunError, ValueError):
    """An input file cannot be tokenized. One line naming the file (and line or row where it applies)."""


# ---------------------------------------------------------------------------------------------------------
# inputs


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


def expand_inputs(inputs: list[str], skipped: list[Path] | None = None) -> list[Path]:
    """Files in reading order: each input as given; a folder's supported files recursively, sorted by path.

    Other files found in folders are appended to `skipped` (when given); named files must be supported.
    """
    if not inputs:
        raise TokenizeError("no input files given")
    files: list[Path] = []
    for item in inputs:
        p = Path(os.path.expanduser(str(item)))
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))  # skip hidden
            ok = [f for f in found if _kind(f)]
            if skipped is not None:
                skipped.extend(f for f in found if not _kind(f))
            if not ok:
                raise TokenizeError(f"{p}: folder holds no {', '.join(SUPPORTED)} files")
            files.extend(ok)
        elif p.is_file():
            if _kind(p) is None:
                raise TokenizeError(f"{p}: unsupported file type {p.suffix or '(no extension)'!r}; "
                                    f"use .txt (one document per file), .jsonl/.json (JSON lines with a "
                                    f"\"text\" field) or .parquet (a \"text\" column)")
            files.append(p)
        elif p.exists():
            raise TokenizeError(f"{p}: not a regular file")
        else:
            raise TokenizeError(f"{p}: no such file or folder")
    return files


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_text(path: Path):
    data = path.read_bytes()
    if not data.strip():
        raise TokenizeError(f"{path}: empty file (no text to tokenize)")
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is not part of the text
    except UnicodeDecodeError as e:
        raise TokenizeError(f"{path}: line {_line_of(data, e.start)}: not UTF-8 text (byte 0x{data[e.start]:02x} "
                            f"at offset {e.start}); binary file?") from None
    if "\x00" in text:
        offset = data.index(b"\x00")
        raise TokenizeError(f"{path}: line {_line_of(data, offset)}: NUL byte at offset {offset}; binary file?")
    yield text


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _read_jsonl(path: Path):
    count = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TokenizeError(f"{path}: line {lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                                    f"column {e.start + 1}); binary file?") from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue  # blank lines (a trailing newline, spacing) carry no document
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                hint = ("; expected JSON lines (one object per line), not a JSON array"
                        if lineno == 1 and line.lstrip().startswith("[") else "")
                raise TokenizeError(f"{path}: line {lineno}: not valid JSON ({e.msg} at column {e.colno}){hint}"
                                    ) from None
            if not isinstance(obj, dict):
                raise TokenizeError(f"{path}: line {lineno}: expected a JSON object with a \"text\" field, "
                                    f"got {_json_type(obj)}")
            if "text" not in obj:
                keys = ", ".join(list(obj)[:8]) or "none"
                raise TokenizeError(f"{path}: line {lineno}: no \"text\" field (fields: {keys})")
            text = obj["text"]
            if not isinstance(text, str):
                raise TokenizeError(f"{path}: line {lineno}: \"text\" is {_json_type(text)}, not a string")
            count += 1
            yield text
    if count == 0:
        raise TokenizeError(f"{path}: no documents (empty file or only blank lines)")


def _open_parquet(path: Path):
    """The ParquetFile after checking it has a string `text` column and at least one row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise TokenizeError(f"{path}: not a readable Parquet file ({_one_line(e)})") from None
    if "text" not in schema.names:
        cols = ", ".join(schema.names[:8]) or "none"
        raise TokenizeError(f"{path}: no \"text\" column (columns: {cols})")
    t = schema.field("text").type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or
            (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))):
        raise TokenizeError(f"{path}: \"text\" column has type {t}, not string")
    if pf.metadata.num_rows == 0:
        raise TokenizeError(f"{path}: no documents (0 rows)")
    return pf


def _read_parquet(path: Path):
    import pyarrow as pa

    pf = _open_parquet(path)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=["text"]):
            col = batch.column(0)
            if col.null_count:
                first = next(i for i, v in enumerate(col.is_null().to_pylist()) if v)
                raise TokenizeError(f"{path}: row {row + first + 1}: \"text\" is null, not a string")
            yield from col.to_pylist()
            row += batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise TokenizeError(f"{path}: row {row + 1}: cannot read Parquet data ({_one_line(e)})") from None


READERS = {"text": _read_text, "jsonl": _read_jsonl, "parquet": _read_parquet}


def iter_documents(files: list[Path]):
    """Every document of every file, in order."""
    for f in files:
        yield from READERS[_kind(f)](f)


def _batches(docs):
    batch, chars = [], 0
    for text in docs:
        batch.append(text)
        chars += len(text)
        if chars >= BATCH_CHARS or len(batch) >= BATCH_DOCS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------------------
# tokenizing


def _encode_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(tokens of the documents back to back, tokens per document, UTF-8 bytes of text) for one batch."""
    ids: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    nbytes = 0
    for i, text in enumerate(texts):
        doc = encode_document(text)
        ids.extend(doc)
        lengths[i] = len(doc)
        nbytes += len(text.encode("utf-8", "surrogatepass"))
    # uint16 arrays pickle far faster than lists of Python ints on the way back from a worker
    return np.asarray(ids, dtype=np.uint16), lengths, nbytes


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _pool(workers: int):
    """A process pool for workers > 1 (else a null context giving None)."""
    if workers <= 1:
        return contextlib.nullcontext(None)
    # fork shares the already-built BPE tables with the workers; elsewhere each worker builds its own.
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context()
    return ctx.Pool(workers)  # leaving its `with` block (also on error) terminates the workers


def _ordered_map(fn, items, pool, workers: int):
    """fn over items in order, on `pool` (None: in this process), at most 2 x workers batches in flight.

    Not Pool.imap: its feeder thread drains the input iterator as fast as it can, holding an arbitrarily large
    input in memory; here reading waits for the workers.
    """
    if pool is None:
        for x in items:
            yield fn(x)
        return
    pending: deque = deque()
    for x in items:
        pending.append(pool.apply_async(fn, (x,)))
        if len(pending) >= 2 * workers:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


class _ShardSink:
    """Routes whole documents to val until it holds at least `val_tokens`, then cuts train shards."""

    def __init__(self, folder: Path, name: str, val_tokens: int, shard_tokens: int):
        self.folder, self.name = folder, name
        self.val_target, self.shard_tokens = val_tokens, shard_tokens
        self.val: list[np.ndarray] = []
        self.val_count = self.val_docs = 0
        self.train: list[np.ndarray] = []
        self.train_buffered = 0
        self.train_total = self.train_docs = self.train_files = 0
        self.written: list[tuple[str, int]] = []  # (file name, tokens)

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        if self.val_count < self.val_target and len(lengths):
            ends = np.cumsum(lengths)
            # smallest number of whole documents that brings val to at least val_tokens
            k = min(int(np.searchsorted(ends, self.val_target - self.val_count, side="left")) + 1, len(lengths))
            cut = int(ends[k - 1])
            self.val.append(tokens[:cut])
            self.val_count += cut
            self.val_docs += k
            tokens, lengths = tokens[cut:], lengths[k:]
        if len(tokens):
            self.train.append(tokens)
            self.train_buffered += len(tokens)
            self.train_total += len(tokens)
            self.train_docs += len(lengths)
        if self.train_buffered >= self.shard_tokens:
            buf = np.concatenate(self.train)  # once per batch, however many shards it fills
            pos = 0
            while len(buf) - pos >= self.shard_tokens:
                self._write_train(buf[pos:pos + self.shard_tokens])
                pos += self.shard_tokens
            self.train = [buf[pos:]] if pos < len(buf) else []
            self.train_buffered = len(buf) - pos

    def _write_train(self, tokens: np.ndarray) -> None:
        fname = f"{self.name}_train_{self.train_files:06d}.bin"
        write_shard(self.folder / fname, tokens)
        self.written.append((fname, len(tokens)))
        self.train_files += 1

    def finish(self) -> None:
        if self.train_buffered:
            self._write_train(np.concatenate(self.train))
            self.train, self.train_buffered = [], 0
        if self.val_target:
            fname = f"{self.name}_val_000000.bin"
            write_shard(self.folder / fname, np.concatenate(self.val) if self.val else np.zeros(0, np.uint16))
            self.written.insert(0, (fname, self.val_count))


def _check_args(out_dir, val_tokens, shard_tokens, workers, name) -> None:
    if val_tokens < 0:
        raise TokenizeError(f"--val-tokens {val_tokens}: must be 0 (no val shard) or more")
    if shard_tokens < 1:
        raise TokenizeError(f"--shard-tokens {shard_tokens}: must be at least 1")
    if workers < 0:
        raise TokenizeError(f"--workers {workers}: must be 0 (all cores) or more")
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise TokenizeError(f"--name {name!r}: must be a plain file-name prefix")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TokenizeError(f"--out {out}: exists and is not a folder")


def tokenize_files(inputs: list[str], out_dir: str, val_tokens: int = 0, shard_tokens: int = 100_000_000,
                   workers: int = 0, name: str = "data") -> dict:
    """Tokenize `inputs` into `{name}_val_000000.bin` (if val_tokens > 0) and `{name}_train_NNNNNN.bin` in out_dir.

    val: the first whole documents, until it holds at least `val_tokens` tokens (the last one may run past).
    train: every later document, cut every `shard_tokens` tokens (a document may continue into the next shard).
    Earlier `{name}_train_*.bin` / `{name}_val_*.bin` files in out_dir are replaced. Returns a summary dict.
    """
    from tqdm import tqdm

    _check_args(out_dir, val_tokens, shard_tokens, workers, name)
    skipped: list[Path] = []
    files = expand_inputs(inputs, skipped)
    if skipped:
        print(f"skipping {len(skipped)} files in input folders that are not {'/'.join(SUPPORTED)} "
              f"(e.g. {skipped[0]})")
    for f in files:  # cheap checks first, so a wrong column fails before minutes of tokenizing
        if _kind(f) == "parquet":
            _open_parquet(f)
    workers = workers or _default_workers()
    gpt2()  # build the BPE once here: forked workers inherit it

    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-tokenize-", dir=out))
    start = time.perf_counter()
    docs = tokens = nbytes = 0
    try:
        sink = _ShardSink(tmp, name, val_tokens, shard_tokens)
        # the pool is forked before tqdm may start its monitor thread
        with _pool(workers) as pool, tqdm(unit=" docs", desc="tokenizing", mininterval=0.5, file=sys.stderr,
                                          disable=None) as bar:
            for ids, lengths, b in _ordered_map(_encode_batch, _batches(iter_documents(files)), pool, workers):
                sink.add(ids, lengths)
                docs += len(lengths)
                tokens += len(ids)
                nbytes += b
                bar.update(len(lengths))
                bar.set_postfix_str(f"{tokens:,} tokens, {nbytes / 1e6:,.1f} MB", refresh=False)
        if sink.train_total == 0:
            raise TokenizeError(f"{', '.join(map(str, inputs))}: all {docs:,} documents ({tokens:,} tokens) went "
                                f"to the val shard (--val-tokens {val_tokens:,}); nothing left to train on")
        sink.finish()
        # Everything is tokenized: move the shards into place and drop earlier shards of this name.
        new = {fname for fname, _ in sink.written}
        stale = [p for pattern in (f"{name}_train_*.bin", f"{name}_val_*.bin") for p in sorted(out.glob(pattern))
                 if p.name not in new]
        for fname in new:
            os.replace(tmp / fname, out / fname)
        for p in stale:
            p.unlink()
        shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            try:
                out.rmdir()  # made by this call; empty again now
            except OSError:
                pass
        raise
    seconds = time.perf_counter() - start
    summary = {
        "documents": docs, "tokens": tokens, "bytes": nbytes, "seconds": seconds, "workers": workers,
        "val_documents": sink.val_docs, "val_tokens": sink.val_count,
        "train_documents": sink.train_docs, "train_tokens": sink.train_total,
        "files": [str(out / fname) for fname, _ in sink.written], "replaced": [str(p) for p in stale],
    }
    for fname, n in sink.written:
        print(f"  {out / fname}: {n:,} tokens")
    rate = nbytes / 1e6 / seconds if seconds else float("inf")
    print(f"tokenized {len(files):,} files, {docs:,} documents ({nbytes / 1e6:,.1f} MB of text) into {tokens:,} tokens "
          f"in {seconds:.1f}s ({rate:,.1f} MB/s, {tokens / max(seconds, 1e-9):,.0f} tokens/s, {workers} workers); "
          f"{len(sink.written)} shard files in {out}/"
          + (f"; removed {len(stale)} earlier shard files of that name" if stale else ""))
    return summary
