"""Validation loss of a checkpoint on any shards, scored exactly as training validates.

Same code as the training loop's validation (`speedrun.step.evaluate`): rows of the recipe's `val_seq_len`
read from the start of the files, documents separated by the attention mask, the attention window of the final
training step, the training device plan's model (bf16 embeddings and FlexAttention on a GPU).
"""

from __future__ import annotations

import dataclasses

from speedrun.data.shards import ShardError, resolve_shards, shard_header
from speedrun.errors import SpeedrunError


def available_val_tokens(files, val_seq_len: int) -> int:
    """Positions the val stream can score in these files: whole rows of val_seq_len (+1 target) per shard."""
    return sum(max(0, (shard_header(f) - 1) // val_seq_len) for f in files) * val_seq_len


def evaluate_checkpoint(checkpoint, val_paths, val_tokens: int | None = None, device: str | None = None,
                        say=print) -> float:
    """Mean val loss of `checkpoint` over the first `val_tokens` positions of `val_paths` (files, folders or
    globs). val_tokens defaults to the recipe's, lowered (with a note) to what the files hold."""
    import torch

    from speedrun.checkpoint import load_model
    from speedrun.step import evaluate

    if not val_paths:
        raise SpeedrunError("eval: give the val shards with --val PATH...")
    files = resolve_shards(list(val_paths) if not isinstance(val_paths, str) else val_paths)
    model, plan, ckpt = load_model(checkpoint, device)
    r = ckpt.recipe
    L = r.val_seq_len
    have = available_val_tokens(files, L)
    if have == 0:
        raise ShardError(f"{files[0]}: the val files hold no whole row of val_seq_len={L:,} tokens (+1)")
    if val_tokens is None:
        val_tokens = r.val_tokens
        if val_tokens > have:
            say(f"note: the val files hold {have:,} positions in rows of {L:,}; scoring those "
                f"(the recipe's val_tokens is {r.val_tokens:,})")
            val_tokens = have
    elif val_tokens <= 0 or val_tokens % L:
        raise SpeedrunError(f"--val-tokens {val_tokens} must be a positive multiple of the recipe's val_seq_len={L}")
    elif val_tokens > have:
        raise ShardError(f"{files[-1]}: the val files hold {have:,} positions in rows of {L:,}, fewer than "
                         f"--val-tokens {val_tokens:,}")
    r = dataclasses.replace(r, val_tokens=val_tokens)
    window = model.window(r.steps)
    runner = torch.compile(model, dynamic=False) if plan.compile else model
    model.train()  # evaluate() switches to eval mode and back, as in training
    loss = evaluate(runner, r, plan, window, files)
    model.eval()
    say(f"val_loss {loss:.4f} over {val_tokens:,} tokens of {len(files)} file(s) "
        f"(checkpoint {ckpt.path}, step {ckpt.step} of {r.steps})")
    return loss
