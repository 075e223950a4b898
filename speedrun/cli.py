"""`speedrun` command line: argument parsing only; each subcommand calls one function elsewhere."""

from __future__ import annotations

import argparse
import json
import sys

from speedrun.data.shards import ShardError
from speedrun.recipe import RecipeError, load_recipe, recipe_names


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=None,
                   help=f"recipe name ({', '.join(recipe_names())}) or a .toml path; default: record21 on a GPU "
                        f"machine, tiny otherwise")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field (repeatable), e.g. --set steps=200")


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Start `nproc` ranks of `speedrun train` on this machine through torchrun; returns its exit code.

    The environment is inherited (NCCL_* and the like stay set). torchrun ends every rank when one dies.
    For several machines run torchrun yourself with its rendezvous flags (README: Multi-GPU and multi-node).
    """
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "speedrun", *argv]
    print(f"speedrun: launching {nproc} ranks: {' '.join(cmd[1:])}", flush=True)
    code = subprocess.call(cmd)
    if code != 0:
        print(f"speedrun: error: a rank failed (torchrun exit code {code}); see the messages above", file=sys.stderr)
    return code


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def cmd_train(args) -> int:
    import os

    import torch

    if args.nproc > 1 and "RANK" not in os.environ:
        # Check the recipe in this process first: a bad key should not cost N process starts.
        load_recipe(args.recipe or ("record21" if torch.cuda.is_available() else "tiny"), args.overrides)
        return launch_torchrun(args.nproc, _strip_nproc(args.argv))

    from speedrun.train import init_distributed, make_plan, run, shutdown_distributed

    name = args.recipe or ("record21" if torch.cuda.is_available() else "tiny")
    recipe = load_recipe(name, args.overrides)
    plan = make_plan(recipe, force_device=args.device, dry_run=args.dry_run)
    if args.dry_run:
        print(dry_run_report(recipe, plan))
        return 0
    init_distributed(plan)
    try:
        result = run(recipe, plan, log_dir=args.log_dir, print_every=args.print_every)
        if plan.main and recipe.sample_tokens > 0:
            from speedrun.evals.sample import generate

            text = generate(result.model, recipe.sample_prompt, recipe.sample_tokens, seed=recipe.seed)
            print(f"sample: {text!r}")
        if plan.main:
            first, last = result.val_losses[0][1], result.val_losses[-1][1]
            print(f"done: val_loss {first:.4f} -> {last:.4f} in {result.training_time_ms / 1000:.1f}s of training; "
                  f"log {result.log_path}")
    finally:
        shutdown_distributed()
    return 0


def dry_run_report(recipe, plan) -> str:
    """Resolved recipe, parameter counts per optimiser group (model built on the meta device), tokens, plan."""
    import torch

    from speedrun.model.gpt import GPT

    with torch.device("meta"):
        model = GPT(recipe, attention=plan.attention)
    groups = model.param_groups()
    count = lambda ps: sum(p.numel() for p in ps)
    total = count(model.parameters())
    lines = [f"recipe {recipe.name}: {recipe.description}", json.dumps(recipe.to_dict(), indent=1), "",
             f"parameters: {total:,} in total (built on the meta device: no weights allocated)"]
    labels = {"muon": "Muon (block matrices)", "embed": "Adam embeddings (token + value)", "head": "Adam head",
              "scalar": "Adam scalars"}
    for key, label in labels.items():
        lines.append(f"  {label:<34} {count(groups[key]):>13,}  ({len(groups[key])} tensors)")
    assert sum(count(g) for g in groups.values()) == total, "optimiser groups must cover every parameter once"
    lines += [
        f"tokens: {recipe.batch_tokens:,} per step, {recipe.batch_tokens * recipe.steps:,} over {recipe.steps} steps; "
        f"validation {recipe.val_tokens:,} tokens",
        "device plan:",
        *("  " + l for l in plan.describe(recipe).splitlines()),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speedrun", description="Train GPT-2-class models as fast as the hardware allows.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a recipe (CPU, one GPU, or a torchrun launch)")
    _add_recipe_args(p)
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="force a device (cpu also runs GPU-only recipes)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved recipe, parameter counts and device plan; do not train")
    p.add_argument("--log-dir", default="logs", help="folder for run logs (default: logs)")
    p.add_argument("--print-every", type=int, default=None, help="console progress every N steps (log: every step)")
    p.add_argument("--nproc", type=int, default=1,
                   help="ranks on this machine (one per GPU, or CPU processes with gloo); starts torchrun")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    from speedrun.runlog import LogError
    from speedrun.train import TrainingError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (RecipeError, ShardError, TrainingError, LogError) as e:
        print(f"speedrun: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speedrun: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
