"""A sampled softmax for the head in training (upstream's ANVIL records): the loss of a step is the cross-entropy
over a fixed number of the head's rows instead of all 50,304, namely every token that is a target in the step (next
token and multi-token-prediction targets) and then other tokens as negatives, up to `rows`. The negatives are taken
in id order from an offset that moves by `rows` each step, so that every token is pushed down now and then.

The head's matmuls and the loss kernel then work on `rows` columns, not the whole vocabulary. The gradient is biased:
tokens absent from the step are not pushed down. So a run switches to the full softmax for its last steps
(`sampled_head_end_frac`), and validation always scores the full vocabulary.

The row count is fixed so that the compiled graph keeps static shapes. A step with more distinct targets than
`rows` cannot be scored: `speedrun train` counts every sampled step's targets on the host before any work
(`rows_needed`, through `run_data`), and `candidate_rows` reports on the device how many it had to leave out, which
stops the run with an error if ever above 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def candidate_rows(targets: Tensor, extra: Tensor | None, vocab_rows: int, rows: int, offset: Tensor | int = 0
                   ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """targets (N,) and extra (N, J) token ids (-1 in extra: no target) -> (ids (rows,) int64: the head rows the
    loss uses, every target's first in id order, then the other tokens in id order from `offset` on, wrapping around;
    targets and extra renumbered into 0..rows-1 (extra keeps its -1s); left out: a 0-d int64 tensor, the count of
    distinct targets beyond `rows`). `offset`: an int or a 0-d tensor (a device tensor: no recompile as it moves)."""
    targets = targets.reshape(-1).long()
    wanted = torch.zeros(vocab_rows, dtype=torch.bool, device=targets.device)
    wanted[targets] = True
    if extra is not None:
        wanted[extra.clamp(min=0).reshape(-1)] = True  # a -1 marks row 0 too: harmless, one row more
    every = torch.arange(vocab_rows, device=targets.device)
    # distinct keys: the wanted rows below 0 in id order, the others from 0 up in id order starting at `offset`
    key = torch.where(wanted, every - vocab_rows, (every - offset) % vocab_rows)
    ids = torch.argsort(key)[:rows]
    renumber = torch.zeros(vocab_rows, dtype=torch.long, device=targets.device)
    renumber[ids] = torch.arange(rows, device=targets.device)
    left_out = (wanted.sum() - rows).clamp(min=0)
    new_extra = None if extra is None else torch.where(extra >= 0, renumber[extra.clamp(min=0)], -1)
    return ids, renumber[targets], new_extra, left_out


def negatives_offset(step: int, rows: int, vocab_rows: int) -> int:
    """Where a step's negatives start: `rows` further on each step, so that over about vocab_rows / (rows - targets)
    steps every row of the head is a negative once."""
    return step * rows % vocab_rows


def rows_at(step: int, steps: int, rows: int, end_frac: float) -> int:
    """The sampled row count at `step` of `steps` (0: the full softmax)."""
    return rows if rows > 0 and step < round(end_frac * steps) else 0


def rows_needed(targets: np.ndarray, extra_targets: bool) -> int:
    """The head rows one forward's targets (a row of token ids) need, as `candidate_rows` counts them on the device
    (its left-out count is this minus `rows`): the distinct ids, and row 0 too with multi-token targets, whose -1s
    (past the row's end) mark it."""
    present = np.bincount(targets, minlength=1) > 0
    if extra_targets:
        present[0] = True
    return int(np.count_nonzero(present))
