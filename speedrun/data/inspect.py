"""`speedrun data inspect`: check token shards (header, size, token ids) and show what is in them: token count,
documents (`<|endoftext|>` markers) and their lengths, token-id range, a decoded preview of the first document."""

import numpy as np

from speedrun.data.shards import HEADER_BYTES, ShardError, read_shard, resolve_shards
from speedrun.data.tokenizer import EOT, VOCAB_SIZE, decode
from speedrun.files import each_file_once
from speedrun.words import plural


def shard_stats(path) -> dict:
    """Statistics of one shard; raises ShardError (one line) for a bad header, size or token id."""
    tokens = read_shard(path, vocab_size=VOCAB_SIZE)  # the same token-id check that training does at open
    n = len(tokens)
    stats = {"path": str(path), "tokens": n, "bytes": HEADER_BYTES + 2 * n}
    if n == 0:
        stats.update(documents=0, lead=0, lengths=np.zeros(0, np.int64), max_id=None, preview_ids=np.zeros(0))
        return stats
    starts = np.flatnonzero(tokens == EOT)
    # A document runs from its <|endoftext|> to the next one; its length excludes the marker. Tokens before the
    # first marker continue a document from the previous shard (FineWeb train shards cut mid-document).
    bounds = np.append(starts, n)
    lead = int(bounds[0])
    preview = tokens[lead + 1:int(bounds[1])] if len(starts) else tokens
    stats.update(documents=len(starts), lead=lead, lengths=np.diff(bounds) - 1, max_id=int(tokens.max()),
                 min_id=int(tokens.min()), preview_ids=np.asarray(preview))
    return stats


def _block(stats: dict, preview_tokens: int) -> list[str]:
    n, docs, lengths = stats["tokens"], stats["documents"], stats["lengths"]
    lines = [f"{stats['path']}", f"  ok: {n:,} tokens ({stats['bytes']:,} bytes)"]
    if n == 0:
        lines.append("  empty shard (no tokens)")
        return lines
    if docs:
        lines.append(f"  documents: {docs:,} (<|endoftext|> markers); tokens per document: min {int(lengths.min()):,}, "
                     f"median {float(np.median(lengths)):,.1f}, mean {float(lengths.mean()):,.1f}, "
                     f"max {int(lengths.max()):,}")
        if stats["lead"]:
            lines.append(f"  {stats['lead']:,} tokens before the first <|endoftext|> (a document continued from "
                         f"the previous shard)")
    else:
        lines.append("  documents: no <|endoftext|> token (one document continued from/into other shards?)")
    lines.append(f"  token ids: {stats['min_id']}..{stats['max_id']} (GPT-2 vocabulary: 0..{VOCAB_SIZE - 1})")
    if preview_tokens > 0:
        ids = stats["preview_ids"]
        shown = ids[:preview_tokens]
        more = f", {len(ids) - len(shown):,} more" if len(ids) > len(shown) else ""
        label = "first document" if docs else "first tokens"
        # repr: newlines, control characters and odd Unicode stay visible and on one line
        lines.append(f"  {label} ({len(shown):,} tokens{more}): {decode(shown)!r}")
    return lines


def inspect_shards(paths: list[str], preview_tokens: int = 200) -> int:
    """Print a block per shard; a line naming the problem for each bad one. 0 if all are fine, else 1."""
    files, bad, ok = [], [], []  # ok: (tokens, documents) per good file
    for p in paths:
        try:
            files.extend(resolve_shards(p))
        except ShardError as e:
            bad.append(str(e))
            print(f"BAD {e}", flush=True)
    files = each_file_once(files)  # a shard named twice is shown and counted once
    for f in files:
        try:
            stats = shard_stats(f)
        except ShardError as e:
            bad.append(str(e))
            print(f"BAD {e}", flush=True)
            continue
        ok.append((stats["tokens"], stats["documents"]))
        print("\n".join(_block(stats, preview_tokens)), flush=True)
    summary = (f"{len(ok)} of {plural(len(files), 'file')} ok: {plural(sum(t for t, _ in ok), 'token')}, "
               f"{plural(sum(d for _, d in ok), 'document')}")
    if bad:
        summary += f"; {plural(len(bad), 'problem')}"
    print(summary)
    return 1 if bad else 0
