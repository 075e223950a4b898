"""Throughput of `speedrun data tokenize` (tokenize_files) for 1 worker and for all cores.

    python benchmarks/tokenize_throughput.py [--mb 50] [--workers 1 2] [--input FILE_OR_FOLDER ...]

Without --input, ~`--mb` MB of English text are made from the bundled demo corpus: its documents decoded,
repeated and shuffled (fixed seed) into one JSON-lines file. Each worker count tokenizes the same input into a
temporary folder; the time covers reading, tokenizing and writing (tokenize_files' own clock). The table gives
MB/s (UTF-8 bytes of document text) and tokens/s, and the runs' shards are checked byte-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import tempfile
from pathlib import Path

from speedrun.data.demo import data_files
from speedrun.data.shards import read_shard
from speedrun.data.tokenize import tokenize_files
from speedrun.data.tokenizer import EOT, decode


def demo_documents() -> list[str]:
    docs = []
    for role in ("train", "val"):
        tokens = read_shard(data_files("demo", role)[0]).tolist()
        starts = [i for i, t in enumerate(tokens) if t == EOT] + [len(tokens)]
        docs += [decode(tokens[a + 1:b]) for a, b in zip(starts, starts[1:]) if b > a + 1]
    return docs


def make_corpus(path: Path, mb: float, seed: int = 0) -> int:
    """Write ~mb MB of demo documents (repeated, shuffled) as JSON lines; return the text bytes written."""
    docs = demo_documents()
    rng = random.Random(seed)
    target, total = int(mb * 1e6), 0
    with open(path, "w", encoding="utf-8") as f:
        while total < target:
            rng.shuffle(docs)
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
                total += len(d.encode())
                if total >= target:
                    break
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0, help="MB of generated text (ignored with --input)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--input", nargs="+", default=None, help="your own .txt/.jsonl/.parquet files or folders")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tokbench-") as tmp:
        tmp = Path(tmp)
        if args.input:
            inputs = args.input
        else:
            corpus = tmp / "corpus.jsonl"
            nbytes = make_corpus(corpus, args.mb)
            print(f"input: {corpus.stat().st_size / 1e6:.1f} MB JSON lines ({nbytes / 1e6:.1f} MB of document text "
                  f"from the demo corpus, repeated and shuffled)")
            inputs = [str(corpus)]
        print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
        rows, outputs = [], {}
        for w in args.workers:
            out = tmp / f"out_w{w}"
            with contextlib.redirect_stdout(io.StringIO()):  # keep the table readable
                s = tokenize_files(inputs, str(out), shard_tokens=100_000_000, workers=w, name="bench")
            rows.append((w, s))
            outputs[w] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        print(f"{'workers':>7} {'documents':>10} {'MB text':>8} {'tokens':>12} {'seconds':>8} {'MB/s':>7} "
              f"{'tokens/s':>11}")
        for w, s in rows:
            print(f"{w:>7} {s['documents']:>10,} {s['bytes'] / 1e6:>8.1f} {s['tokens']:>12,} {s['seconds']:>8.2f} "
                  f"{s['bytes'] / 1e6 / s['seconds']:>7.2f} {s['tokens'] / s['seconds']:>11,.0f}")
        if len(rows) > 1:
            base = rows[0][1]["seconds"]
            print("speed-up vs first row: " + ", ".join(f"{w} workers {base / s['seconds']:.2f}x" for w, s in rows[1:]))
        same = all(o == outputs[args.workers[0]] for o in outputs.values())
        print(f"shards identical across worker counts: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
