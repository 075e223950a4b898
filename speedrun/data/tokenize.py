"""Your own text -> train/val token shards. The documents come from `speedrun.data.documents` (plain text, JSON
lines, Parquet; compressed; a .txt file divided with `txt_docs`).

Documents are tokenized (`encode_document`) by a pool of processes and consumed in input order, so the shards
are byte-identical whatever the worker count. Shards are written into a temporary folder inside the output folder
and moved into place only when every input has been read: an error leaves nothing behind.
"""

import contextlib
import functools
import itertools
import multiprocessing as mp
import multiprocessing.pool
import os
import shlex
import shutil
import signal
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from speedrun.data.demo import name_glob, role_shards
from speedrun.data.documents import (
    SUPPORTED,
    TXT_SEPARATORS,
    ReadPosition,
    TokenizeError,
    expand_inputs,
    iter_documents,
    link_target,
    one_line,
    open_parquet,
    reader_of,
)
from speedrun.data.shards import write_shard
from speedrun.data.tokenizer import encode_document, gpt2
from speedrun.errors import signals_deferred
from speedrun.files import check_writable_folder, remove_stale_temps, say_removed, temp_folder
from speedrun.host import usable_cores
from speedrun.recipe import load_recipe
from speedrun.words import plural

# Work unit sent to a worker: documents up to this many characters (or documents). Large enough that pickling
# and scheduling cost little next to BPE, small enough that both cores stay busy on a few MB of input.
BATCH_CHARS = 256 * 1024
PROGRESS_EVERY_S = 30.0  # a progress line this often where stderr is not a terminal
BATCH_DOCS = 4096
# Default val shard (val_tokens=None): 1/DEFAULT_VAL_SHARE of the tokens, at most DEFAULT_VAL_MAX (record21's
# val_tokens), so a recipe's validation finds enough tokens without the user sizing it.
DEFAULT_VAL_SHARE = 10
DEFAULT_VAL_MAX = 10_485_760
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


def _encode_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(tokens of the documents back to back, tokens per document, UTF-8 bytes of text) for one batch."""
    docs = [encode_document(text) for text in texts]
    lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
    nbytes = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
    # uint16 arrays pickle far faster than lists of Python ints on the way back from a worker
    return np.fromiter(itertools.chain.from_iterable(docs), np.uint16), lengths, nbytes


# Signals that a pool worker ignores (see _pool), blocked from its fork until it does.
_WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_CAN_BLOCK = hasattr(signal, "pthread_sigmask")  # POSIX


def _ignore_signals() -> None:
    """A pool worker ignores SIGINT and SIGTERM, also when a terminal's Ctrl-C or a service manager's SIGTERM reaches
    the whole process group: the parent stops it (see _pool). Any that came since the fork are then dropped."""
    for s in _WORKER_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    if _CAN_BLOCK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)


def _quiet_worker(target, *args) -> None:
    """A pool worker (`target`: multiprocessing's) that ends without a traceback when its parent is gone. Killed
    outright (SIGKILL), the parent reads no more results, and the next one sent is a BrokenPipeError: the only pipe
    a worker writes, its results', broke. Not SIGPIPE's default action: it could end a worker while it holds the
    results' lock, and the other one then waited for it forever."""
    try:
        target(*args)
    except (BrokenPipeError, ConnectionResetError):
        return


class _Pool(multiprocessing.pool.Pool):
    @staticmethod
    def Process(ctx, *args, target=None, **kwds):
        return ctx.Process(*args, target=functools.partial(_quiet_worker, target), **kwds)


@contextlib.contextmanager
def _pool(workers: int):
    """The worker pool (None for one worker), closed and joined on leaving, also on error: the workers finish the few
    batches in flight and exit. Pool.terminate, which stops them with SIGTERM, hung: a fresh fork drops a signal that
    its Python handler (the CLI's, errors.terminate_on_sigterm) gets too early, so such a worker waited forever on
    the queue lock that terminate holds; and a worker killed while holding a queue lock left this process waiting."""
    if workers <= 1:
        yield None
        return
    # Blocked across the fork (the mask is inherited, also by the pool's threads that fork replacements) until the
    # worker ignores them; this thread gets any that came meanwhile when it unblocks them here.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS) if _CAN_BLOCK else None
    try:
        # fork shares the already-built BPE tables with the workers; elsewhere each worker builds its own
        pool = _Pool(workers, initializer=_ignore_signals,
                     context=mp.get_context("fork" if sys.platform.startswith("linux") else None))
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


def _ordered_map(fn, items, pool, workers: int):
    """fn over items in order, on `pool` (None: in this process), at most 2 x workers batches in flight.
    Not Pool.imap: its feeder thread drains the input iterator as fast as it can, holding an arbitrarily large
    input in memory; here reading waits for the workers."""
    if pool is None:
        yield from map(fn, items)
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
        self.folder, self.name, self.val_target, self.shard_tokens = folder, name, val_tokens, shard_tokens
        self.val, self.train = [], []  # token arrays: the val shard's, and train's not yet in a shard
        self.val_count = self.val_docs = self.train_buffered = self.train_total = self.train_docs = self.train_files = 0
        self.written: list[tuple[str, int]] = []  # (file name, tokens)

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        if self.val_count < self.val_target and len(lengths):
            ends = np.cumsum(lengths)
            # smallest number of whole documents that brings val to at least val_tokens
            k = min(int(np.searchsorted(ends, self.val_target - self.val_count)) + 1, len(lengths))
            cut = int(ends[k - 1])
            self.val.append(tokens[:cut])
            self.val_count += cut
            self.val_docs += k
            tokens, lengths = tokens[cut:], lengths[k:]
        self.train.append(tokens)
        self.train_buffered += len(tokens)
        self.train_total += len(tokens)
        self.train_docs += len(lengths)
        if self.train_buffered >= self.shard_tokens:
            buf = np.concatenate(self.train)  # once per batch, however many shards it fills
            full = len(buf) - len(buf) % self.shard_tokens
            for pos in range(0, full, self.shard_tokens):
                self._write_train(buf[pos:pos + self.shard_tokens])
            self.train, self.train_buffered = [buf[full:]], len(buf) - full

    def _write_train(self, tokens: np.ndarray) -> None:
        fname = f"{self.name}_train_{self.train_files:06d}.bin"
        write_shard(self.folder / fname, tokens)
        self.written.append((fname, len(tokens)))
        self.train_files += 1

    def finish(self) -> None:
        if self.train_buffered:
            self._write_train(np.concatenate(self.train))
        if self.val_target:
            fname = f"{self.name}_val_000000.bin"
            write_shard(self.folder / fname, np.concatenate(self.val) if self.val else np.zeros(0, np.uint16))
            self.written.insert(0, (fname, self.val_count))


class _DefaultVal:
    """The default split: val = the first whole documents holding at least min(ceil(tokens / DEFAULT_VAL_SHARE),
    DEFAULT_VAL_MAX) tokens, but never the last document (train needs one; one document in all: no val).
    That size needs the total, so batches are held in memory until the input ends or DEFAULT_VAL_SHARE x
    DEFAULT_VAL_MAX tokens are held, then replayed into a _ShardSink: the same bytes as that explicit --val-tokens."""

    def __init__(self, make_sink):
        self.make_sink, self.sink, self.held, self.held_tokens = make_sink, None, deque(), 0

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        if self.sink is not None:
            return self.sink.add(tokens, lengths)
        self.held.append((tokens, lengths))
        self.held_tokens += len(tokens)
        if self.held_tokens >= DEFAULT_VAL_SHARE * DEFAULT_VAL_MAX:
            self._decide(final=False)

    def done(self) -> _ShardSink:
        if self.sink is None:
            self._decide(final=True)
        return self.sink

    def _decide(self, final: bool) -> None:
        ends = np.cumsum(np.concatenate([lengths for _, lengths in self.held]) if self.held else np.zeros(0, int))
        target = min(-(-int(ends[-1]) // DEFAULT_VAL_SHARE) if len(ends) else 0, DEFAULT_VAL_MAX)
        k = int(np.searchsorted(ends, target)) + 1  # documents that reach the target
        if k >= len(ends):
            if not final:
                return  # the last document held would go to val: wait for more
            k = len(ends) - 1
        self.sink = self.make_sink(int(ends[k - 1]) if k > 0 else 0)
        while self.held:
            self.sink.add(*self.held.popleft())


def _remove_dirs(made: list[Path]) -> None:
    with contextlib.suppress(OSError):  # made by this call and empty again: leave the file system as it was
        for d in reversed(made):
            d.rmdir()


def tokenize_files(inputs: list[str], out_dir: str, val_tokens: int | None = None,
                   shard_tokens: int = 100_000_000, workers: int = 0, name: str = "data",
                   txt_docs: str = "file", val_from: list[str] | None = None, text_field: str = "text") -> dict:
    """Tokenize `inputs` into `{name}_val_000000.bin` (unless val is empty) and `{name}_train_NNNNNN.bin` in out_dir.
    val: the first whole documents, until it holds at least `val_tokens` tokens (the last one may run past);
    0: no val shard (a note says so); None (the default): see _DefaultVal. With `val_from` (files or folders, e.g. a
    dataset's own validation split): val is all of their documents, and train all of the inputs'.
    train: every later document, cut every `shard_tokens` tokens (a document may continue into the next shard).
    txt_docs: how a .txt file divides into documents, a key of TXT_SEPARATORS (default: the whole file is one).
    text_field: the JSON lines' field and Parquet files' column that holds each document.
    Earlier `{name}_train_NNNNNN.bin` / `{name}_val_NNNNNN.bin` files in out_dir are replaced. Returns a summary dict."""
    if txt_docs not in TXT_SEPARATORS:
        raise TokenizeError(f"--txt-docs {txt_docs!r}: must be one of {', '.join(TXT_SEPARATORS)}")
    if val_from and val_tokens is not None:
        raise TokenizeError("--val-from and --val-tokens: give one (--val-from puts all its documents in val)")
    if val_tokens is not None and val_tokens < 0:
        raise TokenizeError(f"--val-tokens {val_tokens}: must be >= 0 (0: no val shard)")
    if shard_tokens < 1:
        raise TokenizeError(f"--shard-tokens {shard_tokens}: must be >= 1")
    if workers < 0:
        raise TokenizeError(f"--workers {workers}: must be >= 0 (0: all cores)")
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise TokenizeError(f"--name {name!r}: must be a plain file-name prefix")
    out = Path(out_dir)
    made = check_writable_folder(out, "--out", TokenizeError)  # the folders to remove again if this fails
    skipped: list[Path] = []
    repeated: list[Path] = []
    broken: list[Path] = []
    files = expand_inputs(inputs, skipped, repeated, broken)
    val_files = expand_inputs(val_from, skipped, repeated, broken) if val_from else []
    shared = sorted({f.resolve() for f in files} & {f.resolve() for f in val_files})
    if shared:
        raise TokenizeError(f"{shared[0]}: both an input and --val-from; validation would score tokens the model "
                            f"trained on")
    if repeated:
        print(f"note: {plural(len(repeated), 'input file')} named more than once (e.g. {repeated[0]}): "
              f"each file is read once")
    if skipped:
        print(f"skipping {plural(len(skipped), 'file')} in input folders that are not {'/'.join(SUPPORTED)} "
              f"(e.g. {skipped[0]})")
    if broken:
        print(f"skipping {plural(len(broken), 'broken symlink')} in input folders or globs "
              f"(e.g. {link_target(broken[0])})")
    for f in [f for f in val_files + files if reader_of(f) == ".parquet"]:  # fail on a wrong column before tokenizing
        open_parquet(f, text_field)
    # all the cores this process may use (containers, taskset)
    workers = workers or usable_cores()
    gpt2()  # build the BPE once here: forked workers inherit it

    try:  # what check_writable_folder cannot foresee (a read-only file system, a full disk) fails here, before tokenizing
        out.mkdir(parents=True, exist_ok=True)
        for line in say_removed(remove_stale_temps(out), "a tokenizing folder"):
            print(f"note: {line}")
        tmp = temp_folder(out, f"{name}-tokenize")
    except OSError as e:
        _remove_dirs(made)
        raise TokenizeError(f"--out {out}: cannot write there ({e.strerror or one_line(e)})") from None
    start = time.perf_counter()
    docs = tokens = nbytes = 0
    try:
        split = (_ShardSink(tmp, name, sys.maxsize, shard_tokens) if val_files  # all to val until the switch below
                 else _DefaultVal(lambda n: _ShardSink(tmp, name, n, shard_tokens)) if val_tokens is None
                 else _ShardSink(tmp, name, val_tokens, shard_tokens))
        # the pool is forked before tqdm may start its monitor thread
        position = ReadPosition()
        with _pool(workers) as pool, _Progress(sum(f.stat().st_size for f in val_files + files), position) as progress:
            for part in [val_files, files] if val_files else [files]:
                batches = _batches(iter_documents(part, txt_docs, text_field, position))
                for ids, lengths, b in _ordered_map(_encode_batch, batches, pool, workers):
                    split.add(ids, lengths)
                    docs += len(lengths)
                    tokens += len(ids)
                    nbytes += b
                    progress.update(len(lengths), docs, tokens, nbytes)
                if part is val_files:
                    split.val_target = split.val_count  # --val-from's documents, all of them, and no more
        sink = split.done() if isinstance(split, _DefaultVal) else split
        whole_txt = txt_docs == "file" and any(reader_of(f) == ".txt" for f in files)  # --txt-docs would divide them
        if sink.train_total == 0:
            every = f"all {docs:,} documents" if docs > 1 else "the one document"
            raise TokenizeError(f"{', '.join(map(str, inputs))}: {every} ({tokens:,} tokens) went to the val shard "
                                f"(--val-tokens {val_tokens:,}); nothing left to train on"
                                f"{_smaller_val(sink.val_docs, whole_txt)}")
        sink.finish()
        new = {fname for fname, _ in sink.written}
        # exactly this name's: a glob of `{name}_train_*.bin` would take name `{name}_train`'s shards too
        stale = [p for role in ("train", "val") for p in role_shards(out, role, name) if p.name not in new]
        with signals_deferred():  # a Ctrl-C between two moves would leave old and new shards mixed
            for fname in new:
                os.replace(tmp / fname, out / fname)
            for p in stale:
                p.unlink()
            shutil.rmtree(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_dirs(made)
        if isinstance(e, OSError) and e.filename and Path(e.filename).parent == tmp:  # a full disk, mid-shard
            # the shard's own name in --out: the temporary folder the file system named is gone now
            raise OSError(e.errno, e.strerror, str(out / Path(e.filename).name)) from e
        raise
    seconds = time.perf_counter() - start
    summary = {"documents": docs, "tokens": tokens, "bytes": nbytes, "seconds": seconds, "workers": workers,
               "val_documents": sink.val_docs, "val_tokens": sink.val_count, "train_documents": sink.train_docs,
               "train_tokens": sink.train_total, "files": [str(out / fname) for fname, _ in sink.written],
               "replaced": [str(p) for p in stale]}
    for fname, n in sink.written:
        print(f"  {out / fname}: {n:,} tokens")
    rate = nbytes / seconds if seconds else float("inf")
    print(f"tokenized {plural(len(files) + len(val_files), 'file')}, {plural(docs, 'document')} ({_size(nbytes)} of "
          f"text) into {tokens:,} tokens in {seconds:.1f}s ({_size(rate, '/s')}, {tokens / max(seconds, 1e-9):,.0f} "
          f"tokens/s, {plural(workers, 'worker')}); {plural(len(sink.written), 'shard file')} in {out}/"
          + (f"; removed {plural(len(stale), 'earlier shard file')} of that name" if stale else ""))
    if not val_files and sink.val_count > sink.train_total:  # --val-from's share is the user's own choice
        print(f"note: the val shard holds {sink.val_count / tokens:.0%} of the tokens ({sink.val_count:,} of "
              f"{tokens:,}), leaving {sink.train_total:,} to train on: val takes whole documents from the start"
              f"{_smaller_val(sink.val_docs, whole_txt)}")
    _say_val_and_next(sink, out, name, val_tokens, txt_docs, bool(val_files), whole_txt)
    return summary


class _Progress:
    """How far through the inputs (bytes on disk, so compressed files count as stored; see ReadPosition), with the
    documents and tokens so far. tqdm's bar on a terminal. Where stderr is a file or a pipe the bar is off (its
    carriage returns would make one endless line), so a plain line every PROGRESS_EVERY_S seconds shows that a long
    tokenization is moving, and how long it has left."""

    def __init__(self, total_bytes: int, position: ReadPosition):
        from tqdm import tqdm
        self.tty, self.total, self.position = sys.stderr.isatty(), total_bytes, position
        self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizing", mininterval=0.5,
                        file=sys.stderr, disable=not self.tty)
        self.start = self.last = time.perf_counter()

    def update(self, new_docs: int, docs: int, tokens: int, nbytes: int) -> None:
        done = self.position.bytes
        if self.tty:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"{docs:,} docs, {tokens:,} tokens", refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last, seconds, share = now, now - self.start, done / max(self.total, 1)
            left = f", about {seconds * (1 - share) / share:,.0f}s left" if 0 < share < 1 else ""
            print(f"tokenizing: {docs:,} documents, {tokens:,} tokens, {nbytes / 1e6:,.1f} MB of text in "
                  f"{seconds:.0f}s ({nbytes / 1e6 / max(seconds, 1e-9):,.1f} MB/s); {share:.0%} of the input read"
                  f"{left}", file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _say_val_and_next(sink: _ShardSink, out: Path, name: str, val_tokens: int | None, txt_docs: str,
                      val_from: bool, whole_txt: bool) -> None:
    """What went to val, and the command that trains on the shards; or why there is no val shard, and how to get one
    (the training recipes read val_files)."""
    default = f"whole documents reaching 10% of the tokens or {DEFAULT_VAL_MAX:,}, whichever is less"
    if val_from:
        print(f"val: the {plural(sink.val_docs, 'document')} of --val-from, {sink.val_count:,} tokens; train: the "
              f"{plural(sink.train_docs, 'document')} of the inputs")
    elif val_tokens is None and sink.val_docs:
        first = plural(sink.val_docs, "document") if sink.val_docs > 1 else "document"
        print(f"val: the first {first}, {sink.val_count:,} tokens (the default: {default}; "
              f"--val-tokens N for another size, 0 for none)")
    elif not val_tokens:
        one = "the input is one document and val takes whole documents; give several documents" + (
            ", or divide a .txt file with --txt-docs lines, paragraphs or eot" if txt_docs == "file" else "")
        print("note: no val shard written; the training recipes need one (val_files): " +
              (f"--val-tokens 0 was given; leave it out for the default ({default}) or give a size" if val_tokens == 0
               else one))
    if not sink.val_count:
        return
    sets = _tiny_val_sets(sink.val_count)
    if sets is not None:
        others = {f.name for role in ("train", "val") for f in role_shards(out, role)} - {f for f, _ in sink.written}
        # --data would take the other names' shards too (and refuse them): name this name's own
        data = ("".join(f" --set {shlex.quote(f'{role}_files=' + name_glob(str(out), name, role))}"
                        for role in ("train", "val")) if others
                else f" --data {shlex.quote(str(out))}")
        # what --data gives (data_folder_overrides), checked as `train --dry-run` checks it: a command that fails
        # is no hint (val may have taken nearly all the tokens)
        from speedrun.launch import data_readiness
        files = [f"{role}_files={name_glob(str(out), name, role)}" for role in ("train", "val")]
        ready, line = data_readiness(load_recipe("tiny", files + sets), None, 1)
        if ready:
            print("train on them: speedrun train --recipe tiny" + data + "".join(f" --set {s}" for s in sets))
        else:
            more = _smaller_val(sink.val_docs, whole_txt) if sink.val_count > sink.train_total and not val_from else ""
            print(f"note: no train command: tiny would refuse these shards ({line.removeprefix('data: NOT READY: ')})"
                  f"{more}")
    else:
        tiny = load_recipe("tiny")
        least, own = tiny.attn_block_size + 1, tiny.val_tokens + 1
        if val_from:  # --val-tokens is refused beside --val-from: the val text itself must grow
            fix = f"give --val-from documents of at least {least:,} tokens ({own:,} for tiny's own validation)"
        elif sink.val_count + sink.train_total >= own + least:  # room for tiny's validation and some training
            fix = f"give --val-tokens {own} (tiny's own validation) or at least {least}"
        elif sink.val_count + sink.train_total >= 2 * least:
            fix = f"give --val-tokens {least} or more"
        else:
            fix = (f"the input holds {sink.val_count + sink.train_total:,} tokens in all, too few for validation and "
                   f"training ({2 * least:,} at least); give more text")
        print(f"note: the val shard ({sink.val_count:,} tokens) is too small for validation rows of "
              f"{tiny.attn_block_size} tokens; {fix}")


def _smaller_val(val_docs: int, whole_txt: bool) -> str:
    """How to leave train more of the tokens where val took most or all (val takes whole documents from the start):
    fewer of them (a smaller --val-tokens), or smaller ones."""
    fixes = ([f"a smaller --val-tokens, so val takes fewer of its {val_docs:,} documents"] if val_docs > 1 else []
             ) + (["--txt-docs lines, paragraphs or eot to divide the .txt files into smaller documents"] if whole_txt
                  else [])
    return "; give " + ", or ".join(fixes or ["more documents, or put a small one first"])


def _size(nbytes: float, per: str = "") -> str:
    """Bytes (or bytes per second, per="/s") as the tokenize summary says them: in a unit that shows the value, not
    as '0.0 MB'."""
    return (f"{nbytes / 1e6:,.1f} MB{per}" if nbytes >= 100_000 else f"{nbytes / 1e3:,.1f} KB{per}"
            if nbytes >= 100 else f"{nbytes:,.0f} {'byte' if round(nbytes) == 1 and not per else 'bytes'}{per}")


def _tiny_val_sets(val_tokens: int) -> list[str] | None:
    """The --set's that let `tiny` validate on one val shard of `val_tokens` tokens: none where its own rows fit, else
    fewer or shorter rows (each row needs one token more than its length); None where no row fits."""
    r = load_recipe("tiny")
    rows = lambda seq: (val_tokens - 1) // seq
    if rows(r.val_seq_len) * r.val_seq_len >= r.val_tokens:
        return []
    seq = min(r.val_seq_len, (val_tokens - 1) // r.attn_block_size * r.attn_block_size)
    return [f"val_seq_len={seq}", f"val_tokens={seq * min(rows(seq), r.val_tokens // seq)}"] if seq else None
