"""`speedrun` command line: argument parsing only; each subcommand calls one function elsewhere."""

from __future__ import annotations

import argparse
import json
import sys

from speedrun.errors import SpeedrunError
from speedrun.recipe import load_recipe, recipe_names


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

    resume = None
    if args.resume:
        # A resumed run continues the checkpoint's recipe (checked here, once, before any rank starts).
        from speedrun.checkpoint import load_for_resume

        resume = load_for_resume(args.resume, args.checkpoint_dir, args.recipe, args.overrides)
    if args.nproc > 1 and "RANK" not in os.environ:
        # Check the recipe in this process first: a bad key should not cost N process starts.
        if resume is None:
            load_recipe(args.recipe or ("record21" if torch.cuda.is_available() else "tiny"), args.overrides)
        # Ctrl-C reaches torchrun and every rank; the ranks finish the step, checkpoint and exit. Wait for them
        # (subprocess.call would kill torchrun on KeyboardInterrupt), then exit 130 as a single process does.
        import signal

        got = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
        try:
            code = launch_torchrun(args.nproc, _strip_nproc(args.argv))
        finally:
            signal.signal(signal.SIGINT, previous)
        return 130 if got and code != 0 else code

    from speedrun.distributed import init_distributed, shutdown_distributed
    from speedrun.interrupt import Interrupted
    from speedrun.plan import make_plan
    from speedrun.train import run

    if resume is not None:
        recipe = resume.recipe
    else:
        name = args.recipe or ("record21" if torch.cuda.is_available() else "tiny")
        recipe = load_recipe(name, args.overrides)
    plan = make_plan(recipe, force_device=args.device, dry_run=args.dry_run)
    if args.dry_run:
        print(dry_run_report(recipe, plan))
        return 0
    init_distributed(plan)
    try:
        try:
            # --save-every 0 (the default) on resume keeps the checkpoint's own setting
            result = run(recipe, plan, log_dir=args.log_dir, print_every=args.print_every,
                         save_every=args.save_every or None, checkpoint_dir=args.checkpoint_dir, resume=resume)
        except Interrupted as e:
            if plan.main:
                print(f"speedrun: error: {e}", file=sys.stderr)
            return e.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
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


def cmd_data_fineweb(args) -> int:
    from speedrun.data.fineweb import download_fineweb

    download_fineweb(args.variant, args.train_shards, args.dir)
    return 0


def cmd_data_tokenize(args) -> int:
    from speedrun.data.tokenize import tokenize_files

    tokenize_files(args.inputs, args.out, val_tokens=args.val_tokens, shard_tokens=args.shard_tokens,
                   workers=args.workers, name=args.name)
    return 0


def cmd_data_inspect(args) -> int:
    from speedrun.data.inspect import inspect_shards

    return inspect_shards(args.paths, preview_tokens=args.preview)


def cmd_stats(args) -> int:
    from speedrun.stats import stats_report

    text, ok = stats_report(args.logs, target=args.target)
    print(text)
    return 0 if ok else 1


def cmd_plot(args) -> int:
    from speedrun.plot import plot_logs

    plot_logs(args.logs, args.out, target=args.target)
    print(f"wrote {args.out}")
    return 0


def cmd_records(args) -> int:
    from speedrun.records import new_record, rebuild_records_table

    if args.new:
        name, *logs = args.new
        if not logs:
            raise SpeedrunError("records --new NAME LOG...: give the run logs (files or folders) after the name")
        folder = new_record(args.dir, name, logs, command=args.command or "", device=args.device or "",
                            target=args.target, notes=args.notes or "")
        print(f"wrote {folder}")
    path = rebuild_records_table(args.dir)
    print(f"wrote {path}")
    return 0


def cmd_sample(args) -> int:
    from speedrun.evals.sample import sample_from_checkpoint

    for text in sample_from_checkpoint(args.checkpoint, args.prompt, max_tokens=args.tokens,
                                       temperature=args.temperature, top_k=args.top_k, num_samples=args.num_samples,
                                       seed=args.seed, device=args.device):
        print(text)
        print("-" * 40)
    return 0


def cmd_eval(args) -> int:
    if args.what == "hellaswag":
        from speedrun.evals.hellaswag import evaluate_hellaswag

        evaluate_hellaswag(args.checkpoint, data=args.data, limit=args.limit, device=args.device)
        return 0
    from speedrun.evals.val_loss import evaluate_checkpoint

    evaluate_checkpoint(args.what, args.val, val_tokens=args.val_tokens, device=args.device)
    return 0


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
    p.add_argument("--save-every", type=int, default=0, help="write a checkpoint every N steps (and at the end)")
    p.add_argument("--checkpoint-dir", default="checkpoints", help="folder for checkpoints (default: checkpoints)")
    p.add_argument("--resume", default=None, metavar="PATH|latest", help="continue a run from a checkpoint")
    p.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="get tokens in place: download FineWeb shards, tokenize text, inspect shards")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("fineweb", help="download cached GPT-2 FineWeb shards from the Hugging Face hub")
    p.add_argument("--variant", choices=["10B", "100B", "edu10B"], default="10B")
    p.add_argument("--train-shards", type=int, default=8, help="number of train shards (100M tokens each)")
    p.add_argument("--dir", default=None, help="target folder (default: data/fineweb<variant>)")
    p.set_defaults(func=cmd_data_fineweb)
    p = dsub.add_parser("tokenize", help="plain text / JSON lines / Parquet files -> train and val shards")
    p.add_argument("inputs", nargs="+", help="files (.txt, .jsonl, .parquet) or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--val-tokens", type=int, default=0, help="tokens of whole documents to put in the val shard")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per train shard")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--name", default="data", help="shard file prefix: NAME_train_000000.bin, NAME_val_000000.bin")
    p.set_defaults(func=cmd_data_tokenize)
    p = dsub.add_parser("inspect", help="check shards and show token / document statistics and a preview")
    p.add_argument("paths", nargs="+", help="shard files, folders or globs")
    p.add_argument("--preview", type=int, default=200, help="tokens of the first document to decode")
    p.set_defaults(func=cmd_data_inspect)

    p = sub.add_parser("stats", help="final val loss, time and a one-sided t-test across run logs")
    p.add_argument("logs", nargs="+", help="run log files or folders")
    p.add_argument("--target", type=float, default=3.28, help="val loss target (default 3.28)")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("plot", help="val loss against training time and steps, one line per run")
    p.add_argument("logs", nargs="+", help="run log files or folders")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--target", type=float, default=3.28)
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("records", help="rebuild the table in records/README.md from the record folders; "
                                       "--new NAME LOG... first makes a record")
    p.add_argument("--dir", default="records")
    p.add_argument("--new", nargs="+", metavar="NAME LOG", help="make records/<today>_NAME/ from these run logs")
    p.add_argument("--command", default=None, help="(--new) the command that produced the runs")
    p.add_argument("--device", default=None, help="(--new) the machine, e.g. '8x H100 80GB'")
    p.add_argument("--target", type=float, default=3.28, help="(--new) val loss target (default 3.28)")
    p.add_argument("--notes", default=None, help="(--new) free text for the record's README")
    p.set_defaults(func=cmd_records)

    p = sub.add_parser("sample", help="generate text from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default="")
    p.add_argument("--tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("eval", help="val loss of a checkpoint on any shards, or `eval hellaswag CHECKPOINT`")
    p.add_argument("what", help="a checkpoint path, or 'hellaswag'")
    p.add_argument("checkpoint", nargs="?", help="(hellaswag) the checkpoint")
    p.add_argument("--val", nargs="+", default=None, help="(val loss) shard files, folders or globs")
    p.add_argument("--val-tokens", type=int, default=None, help="(val loss) positions to score (default: the recipe's)")
    p.add_argument("--data", default=None, help="(hellaswag) local hellaswag_val.jsonl instead of downloading")
    p.add_argument("--limit", type=int, default=None, help="(hellaswag) first N items only")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except SpeedrunError as e:
        print(f"speedrun: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speedrun: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
