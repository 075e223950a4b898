"""Token batches per rank and accumulation step, read in order from shards.

One optimiser step consumes `batch_tokens` contiguous tokens of the stream. They are cut into
`world_size x accum` rows of `seq_len` tokens; the row of rank r at micro-step m is row m * world_size + r,
and it reads `seq_len + 1` tokens (inputs = first seq_len, targets = the same shifted by one). So the same
recipe trains on the same tokens whatever the number of ranks. When the current shard has fewer than
`batch_tokens + 1` tokens left, the stream moves to the next shard (sorted by name); a train stream may loop.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speedrun.data.shards import MAX_TOKEN, ShardError, read_shard, resolve_shards, shard_header
from speedrun.data.tokenizer import VOCAB_SIZE


@dataclass
class StreamPosition:
    """Where a stream stands: shard index in its file list, token offset in it, passes completed."""
    shard: int = 0
    offset: int = 0
    passes: int = 0


def row_index(micro_step: int, rank: int, world_size: int) -> int:
    return micro_step * world_size + rank


class BatchStream:
    def __init__(self, files, batch_tokens: int, seq_len: int, rank: int = 0, world_size: int = 1,
                 loop: bool = False, device: str | torch.device = "cpu", position: StreamPosition | None = None,
                 role: str = "train", vocab_size: int = VOCAB_SIZE):
        self.files: list[Path] = resolve_shards(files)
        if batch_tokens % (seq_len * world_size):
            raise ValueError(f"batch of {batch_tokens} tokens is not a whole number of "
                             f"{world_size} x {seq_len}-token rows")
        self.batch_tokens, self.seq_len, self.rank, self.world_size = batch_tokens, seq_len, rank, world_size
        self.accum = batch_tokens // (seq_len * world_size)
        self.loop, self.device = loop, torch.device(device)
        self.position = position or StreamPosition()
        self._tokens, self._tokens_shard = None, -1
        # every header and token id checked once, here: a bad shard fails before any work, not mid-run on the clock
        usable = [len(read_shard(f, vocab_size=vocab_size)) > batch_tokens for f in self.files]
        if not any(usable):
            where = self.files[0] if len(self.files) == 1 else f"{self.files[0].parent} ({len(self.files)} shards)"
            fix = ("make a larger val shard (`speedrun data tokenize --val-tokens N`) or lower val_seq_len and "
                   "val_tokens" if role == "validation" else "add text, or lower batch_tokens and seq_len")
            largest = max(shard_header(f) for f in self.files)
            raise ShardError(f"{where}: no shard holds a whole {role} batch of {batch_tokens:,} tokens and its "
                             f"next-token targets (needs {batch_tokens + 1:,}; largest: {largest:,} tokens); {fix}")

    def steps_left(self) -> int | None:
        """Optimiser steps the files hold from the current position on (None: a looping stream has no end). A step
        starting at offset o needs o + batch_tokens + 1 tokens, as `_advance_to_fit` checks."""
        if self.loop:
            return None
        sizes = [shard_header(f) for f in self.files[self.position.shard:]]
        starts = [self.position.offset] + [0] * (len(sizes) - 1)
        return sum(max(0, (n - 1 - o) // self.batch_tokens) for n, o in zip(sizes, starts))

    def _shard_tokens(self) -> np.ndarray:
        if self._tokens_shard != self.position.shard:
            self._tokens = read_shard(self.files[self.position.shard], vocab_size=MAX_TOKEN + 1)  # checked above
            self._tokens_shard = self.position.shard
        return self._tokens

    def _advance_to_fit(self) -> list[int]:
        """Move to the next shard (looping if allowed) until the current one holds the whole next step; return the
        start offsets of that step's rows (all ranks, in row order)."""
        if self.position.shard >= len(self.files):
            raise StopIteration  # an exhausted stream stays exhausted
        for _ in range(2 * len(self.files) + 1):
            if self.position.offset + self.batch_tokens + 1 <= len(self._shard_tokens()):
                return [self.position.offset + i * self.seq_len for i in range(self.accum * self.world_size)]
            self.position.shard += 1
            self.position.offset = 0
            if self.position.shard == len(self.files):
                if not self.loop:
                    raise StopIteration
                self.position.shard = 0
                self.position.passes += 1
        raise ShardError("no shard holds a whole batch")  # pragma: no cover (checked in __init__)

    def next_rows(self) -> list[tuple[int, int]]:
        """(shard, start offset) of this rank's rows for the next step, in micro-step order; advances the stream."""
        starts = self._advance_to_fit()
        rows = [(self.position.shard, starts[row_index(m, self.rank, self.world_size)]) for m in range(self.accum)]
        self.position.offset = starts[-1] + self.seq_len  # the end of the step's last row of inputs
        return rows

    def upcoming_targets(self, steps: int):
        """Yield (steps ahead, every rank's target rows as arrays) for the next `steps` steps (fewer where the files
        end), leaving the stream where it is: for checks of the data before training."""
        at = (self.position.shard, self.position.offset, self.position.passes)
        try:
            for ahead in range(steps):
                try:
                    starts = self._advance_to_fit()
                except StopIteration:
                    return
                tokens = self._shard_tokens()
                yield ahead, [tokens[s + 1: s + self.seq_len + 1] for s in starts]
                self.position.offset = starts[-1] + self.seq_len
        finally:
            self.position.shard, self.position.offset, self.position.passes = at

    def next_step(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's (inputs int32, targets int64) pairs for the next optimiser step, one per micro-step."""
        rows = self.next_rows()
        tokens, out = self._shard_tokens(), []
        for _, start in rows:
            buf = torch.from_numpy(np.array(tokens[start: start + self.seq_len + 1], dtype=np.int32))
            if self.device.type == "cuda":
                buf = buf.pin_memory().to(self.device, non_blocking=True)
            out.append((buf[:-1], buf[1:].long()))
        return out

    def __iter__(self):
        return self

    def __next__(self):
        return self.next_step()


def check_val_size(files, val_tokens: int, val_seq_len: int, world_size: int = 1, vocab_size: int = VOCAB_SIZE) -> None:
    """Raise ShardError (one line, naming the files) unless the val files hold `val_tokens` positions, every token id
    below `vocab_size`. The positions scored do not depend on `world_size` (see `val_batches`): accepted for symmetry."""
    for _ in val_batches(files, val_tokens, val_seq_len, 0, 1, read=False, vocab_size=vocab_size):
        pass


def val_batches(files, val_tokens: int, val_seq_len: int, rank: int = 0, world_size: int = 1,
                device: str | torch.device = "cpu", read: bool = True, vocab_size: int = VOCAB_SIZE):
    """This rank's validation rows, read from the start of the val stream every time it is called.
    The stream is walked in rows of val_seq_len whatever the world size, and rank r scores rows r, r + W, ...;
    so the positions scored never depend on the number of ranks, even across several val shards."""
    rows = val_tokens // val_seq_len
    if val_tokens % val_seq_len or rows % world_size:
        raise ValueError(f"val_tokens={val_tokens} is not a multiple of world size x val_seq_len = "
                         f"{world_size * val_seq_len}")
    stream = BatchStream(files, val_seq_len, val_seq_len, 0, 1, loop=False, device=device, role="validation",
                         vocab_size=vocab_size)
    for row in range(rows):
        try:
            if row % world_size != rank:
                stream.next_rows()
                continue
            pair = stream.next_step()[0] if read else stream.next_rows()
        except StopIteration:
            raise ShardError(f"{stream.files[-1]}: the validation files end before {val_tokens:,} tokens "
                             f"(rows of {val_seq_len:,}); lower val_tokens") from None
        yield pair
