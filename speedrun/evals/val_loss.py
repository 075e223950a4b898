"""Validation loss of a checkpoint on any shards, scored exactly as training validates: the same code
(`speedrun.step.evaluate`), rows of the recipe's `val_seq_len` read from the start of the files, the attention
window of the final training step, the training device plan's model (bf16 embeddings and FlexAttention on a GPU).
"""

import dataclasses
import os

from speedrun.build import compiled_runner
from speedrun.checkpoint import Checkpoint, load, resolve
from speedrun.data.demo import data_files
from speedrun.data.shards import ShardError, shard_header
from speedrun.errors import SpeedrunError
from speedrun.evals.sample import load_on
from speedrun.step import evaluate


def evaluate_checkpoint(checkpoint, val_paths=None, val_tokens: int | None = None, device: str | None = None,
                        say=print) -> float:
    """Mean val loss of `checkpoint` over the first `val_tokens` positions of `val_paths` (files, folders, globs
    or "demo"; default: the checkpoint recipe's val_files). val_tokens defaults to the recipe's, lowered (with a
    note) to what the files hold."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load(resolve(checkpoint))
    r = ckpt.recipe
    specs = [val_paths] if isinstance(val_paths, str) else list(val_paths or [r.val_files])
    try:  # file problems before the model is built
        files = [f for spec in specs for f in data_files(str(spec), "val", "val")]
    except ShardError as e:
        if val_paths or r.val_files == "demo" or os.path.isabs(os.path.expanduser(r.val_files)):
            raise
        raise ShardError(f"{e} (the checkpoint's recipe names {r.val_files!r}, relative to the folder its run started "
                         f"in; this is {os.getcwd()}: run from there, or give --val PATH)") from None
    say(f"val files: {', '.join(map(str, files))}" + ("" if val_paths else f" (the checkpoint recipe's val_files "
                                                                            f"{r.val_files!r})"))
    L = r.val_seq_len
    have = sum(max(0, (shard_header(f) - 1) // L) for f in files) * L  # whole rows of L (+1 target) per shard
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
    model, plan, _ = load_on(ckpt, device)
    r = dataclasses.replace(r, val_tokens=val_tokens)
    runner = compiled_runner(model, plan)
    model.train()  # evaluate() switches to eval mode and back, as in training
    # the attention window of the checkpoint's step, as the run's own validation there: the log's figure, not the
    # final window's (the same at the last step)
    loss = evaluate(runner, r, plan, model.window(ckpt.step), files)
    model.eval()
    say(f"val_loss {loss:.4f} over {val_tokens:,} tokens of {len(files)} file(s) "
        f"(checkpoint {ckpt.path}, step {ckpt.step} of {r.steps})")
    return loss
