"""Validation at longer attention windows than training ended with: does a trained model score better when it may
look farther back, with plain rotary or with YaRN-rescaled rotary (Peng et al., 2023)?

    python benchmarks/val_window.py CKPT [CKPT ...] --val-files /tmp/corpus/corpus_val_000000.bin \
        --val-tokens 2097152 --factors 1 1.5 2 --json $OUT/val_window.json

For each checkpoint and each window factor f (the long window f x the final training one, in whole blocks) it scores
the val positions with: plain rotary, short layers at half the long window as in training ("plain") or at their
trained window ("plain-long": the long layers alone look farther); YaRN frequencies (those that turn fewer than
ALPHA times over the trained long window divided by f, those that turn more than BETA times kept, a linear blend
between), again both ways ("yarn", "yarn-long"); and YaRN with its attention temperature (logits x (0.1 ln f + 1)^2,
"yarn+temp"). The windows are tensors for the compiled model, so only a new temperature recompiles.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

import speedrun.model.gpt as gpt_module
from speedrun.checkpoint import load
from speedrun.data.demo import data_files
from speedrun.evals.sample import final_window, load_on
from speedrun.model.gpt import CausalSelfAttention
from speedrun.model.rotary import rotary_frequencies
from speedrun.step import evaluate

ALPHA, BETA = 1.0, 32.0
SHORT = [None]  # a fixed short window (tensor) for the "-long" modes, else None: half the long one
_short_window_blocks = gpt_module.short_window_blocks


def yarn_frequencies(head_dim: int, base: float, trained_tokens: int, factor: float) -> torch.Tensor:
    freqs = rotary_frequencies(head_dim, base)
    if factor <= 1:
        return freqs
    turns = trained_tokens * freqs / (2 * math.pi)
    keep = ((turns - ALPHA) / (BETA - ALPHA)).clamp(0, 1)
    return keep * freqs + (1 - keep) * freqs / factor


def set_rotary(model, freqs: torch.Tensor) -> None:
    rotary = next(m.rotary for m in model.modules() if isinstance(m, CausalSelfAttention))
    pos = torch.arange(rotary.cos.size(0), dtype=torch.float32, device=rotary.cos.device)
    theta = torch.outer(pos, freqs.to(rotary.cos.device))
    rotary.cos.copy_(theta.cos())
    rotary.sin.copy_(theta.sin())


def set_scale(model, scale: float) -> None:
    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            m.scale = scale


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--val-files", required=True)
    ap.add_argument("--val-tokens", type=int, default=None)
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test on small models)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("val_window: needs a CUDA GPU", file=sys.stderr)
        return 2
    files = data_files(args.val_files, "val")
    # the model's short window, made settable for this process (the compiled model reads SHORT[0] as an input)
    gpt_module.short_window_blocks = lambda long: _short_window_blocks(long) if SHORT[0] is None else SHORT[0]
    rows = []
    for path in args.checkpoints:
        ckpt = load(path)
        model, plan, _ = load_on(ckpt, args.device)
        r = ckpt.recipe
        if args.val_tokens:
            import dataclasses

            r = dataclasses.replace(r, val_tokens=args.val_tokens)
        runner = torch.compile(model, dynamic=False) if plan.compile else model
        model.train()
        trained = final_window(model)
        for f in args.factors:
            blocks = max(1, round(trained * f))
            window = torch.tensor(blocks, dtype=torch.int32, device=plan.device) if plan.compile else blocks
            modes = [("plain", False, False, False)]
            if f > 1:
                modes += [("plain-long", False, False, True), ("yarn", True, False, False),
                          ("yarn-long", True, False, True), ("yarn+temp", True, True, False)]
            for mode, yarn, temp, long_only in modes:
                short = _short_window_blocks(trained)
                SHORT[0] = (torch.tensor(short, dtype=torch.int32, device=plan.device) if plan.compile else short
                            ) if long_only else None
                eff = blocks / trained
                freqs = yarn_frequencies(r.head_dim, r.rotary_base, trained * r.attn_block_size, eff if yarn else 1)
                set_rotary(model, freqs)
                set_scale(model, r.attn_scale * ((0.1 * math.log(eff) + 1) ** 2 if temp else 1.0))
                t0 = time.time()
                loss = evaluate(runner, r, plan, window, files)
                row = dict(checkpoint=str(path), window_blocks=blocks, short_blocks=short if long_only else
                           _short_window_blocks(blocks), factor=eff, mode=mode, val_loss=loss,
                           seconds=round(time.time() - t0, 1))
                rows.append(row)
                print(json.dumps(row), flush=True)
        del model, runner
        torch.cuda.empty_cache()
    print(f"\n{'checkpoint':>40} {'long':>5} {'short':>5} {'mode':>10} {'val loss':>9}")
    for row in rows:
        print(f"{row['checkpoint'][-40:]:>40} {row['window_blocks']:>5} {row['short_blocks']:>5} {row['mode']:>10} "
              f"{row['val_loss']:>9.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
