"""`speedrun` command line: argument parsing only; each subcommand calls one function elsewhere."""

import argparse
import atexit
import contextlib
import errno
import glob
import importlib.metadata
import math
import os
import re
import signal
import sys

import speedrun
from speedrun.errors import SpeedrunError, Terminated, set_stop_handlers, terminate_on_sigterm
from speedrun.launch import note_exit_code
from speedrun.recipe import recipe_names
from speedrun.train_command import train_command


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        # "(default: None)" says nothing: such options describe their default in their help text
        if action.default is None or action.default is False or action.default in ("", []):
            return action.help
        if "(default:" in (action.help or ""):  # a help text that explains its default already says it
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command shows its defaults; a usage error is one line, as every other user error is."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)
        # the deepest (sub)command parsed wins this default, so a stray argument is reported against it
        self.set_defaults(command_parser=self)

    def error(self, message):
        self.exit(2, f"speedrun: error: {message} (see '{self.prog} --help')\n")


def _at_least(low: int | None):
    """An argparse type: an integer >= low (None: any), else one of the two wordings every integer option uses."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
        return value
    return parse


def _finite(accept, wanted: str):
    """An argparse type: a finite float that `accept` takes, else "'TEXT' must be WANTED" (inf and nan never)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {wanted}")
        return value
    return parse


_temperature = _finite(lambda v: v >= 0, "a finite number >= 0 (0: greedy)")
# a val loss target is a cross-entropy: finite and above 0 (inf would pass every run, nan none)
val_loss_target = _finite(lambda v: v > 0, "a val loss: a finite number above 0")


def _device(text: str) -> str:
    """cpu, cuda or cuda:N, checked against the GPUs visible here (before the checkpoint is read)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not cpu, cuda or cuda:N")
    if text != "cpu":
        import torch
        n, index = torch.cuda.device_count(), int(text[5:] or 0)
        if index >= n:
            raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU is visible; use --device cpu" if not n else
                                             f"{text}: only {n} CUDA GPU(s) are visible (cuda:0..cuda:{n - 1})")
    return text


def _prompt_file(path: str) -> str:
    """The file's UTF-8 text (a byte-order mark and one trailing newline dropped), read before any work."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read().removesuffix("\n")
    except UnicodeDecodeError as e:
        raise argparse.ArgumentTypeError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                         f"{e.start})") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{path}: cannot read it ({e.strerror or e})") from None


def _version() -> str:
    try:
        return importlib.metadata.version("speedrun")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return speedrun.__version__


def cmd_data(args) -> int:
    if args.data_command == "fineweb":
        from speedrun.data.fineweb import download_fineweb
        download_fineweb(args.variant, args.train_shards, args.dir)
    elif args.data_command == "tokenize":
        from speedrun.data.tokenize import tokenize_files
        tokenize_files(args.inputs, args.out, val_tokens=args.val_tokens, shard_tokens=args.shard_tokens,
                       workers=args.workers, name=args.name, txt_docs=args.txt_docs, val_from=args.val_from,
                       text_field=args.text_field)
    else:
        from speedrun.data.inspect import inspect_shards
        return inspect_shards(args.paths, preview_tokens=args.preview)
    return 0


def cmd_stats(args) -> int:
    from speedrun.stats import stats_report
    text, ok = stats_report(args.logs, target=args.target)
    print(text)
    return 0 if ok else 1


def cmd_compare(args) -> int:
    from speedrun.compare import compare_report
    base, change = args.base, args.change
    if args.pair and (base or change):
        args.command_parser.error("give BASE CHANGE or --base ... --change ..., not both")
    if args.pair and len(args.pair) != 2:
        args.command_parser.error(f"give BASE CHANGE: two paths, one each (got {len(args.pair)}); several logs a side: "
                                  f"--base ... --change ...")
    if args.pair:
        base, change = [args.pair[0]], [args.pair[1]]
    elif not (base and change):
        args.command_parser.error("give BASE CHANGE, or --base and --change (each: log files or folders)")
    print(compare_report(base, change))
    return 0


def cmd_plot(args) -> int:
    from speedrun.plot import plot_logs
    plot_logs(args.logs, args.out, target=args.target)
    print(f"wrote {args.out}")
    return 0


def cmd_records(args) -> int:
    from speedrun.records import new_record, rebuild_records_table
    stray = [f for f, v in (("--command", args.command), ("--device", args.device), ("--notes", args.notes)) if v]
    if stray and not args.new:
        args.command_parser.error(f"{' and '.join(stray)} {'describes' if len(stray) == 1 else 'describe'} a new "
                                  f"record: give --new NAME LOG... too")
    if args.new:
        name, *logs = args.new
        if not logs:
            raise SpeedrunError("records --new NAME LOG...: give the run logs (files or folders) after the name")
        folder = new_record(args.dir, name, logs, command=args.command or "", device=args.device or "",
                            target=args.target, notes=args.notes or "")
        print(f"wrote {folder}")
        from speedrun.stats import P_BAR, format_p, summarize
        for g in summarize([str(folder)], args.target).groups.values():  # one group (new_record checks)
            if not g.meets_bar:
                print(f"note: its runs do not meet the record bar (a mean below {args.target:g} with p < "
                      f"{P_BAR:g}): mean {g.mean:.4f}, p = {format_p(g.p_value)}, n = {g.n}"
                      + (" (degenerate: every final val loss is the same)" if g.std == 0 else ""), file=sys.stderr)
    print(f"wrote {rebuild_records_table(args.dir)}")
    return 0


def cmd_sample(args) -> int:
    from speedrun.checkpoint import load, resolve
    from speedrun.evals.sample import check_sample_options, sample_from_checkpoint
    check_sample_options(args.tokens, args.temperature, args.top_k, args.num_samples, args.seed)  # before the load
    ckpt = load(resolve(args.checkpoint))
    print(f"checkpoint: {ckpt.path} (step {ckpt.step})", file=sys.stderr)  # which file `latest` named; stdout: samples
    def show(piece: str) -> None:  # each token's text as it comes: a long sample shows as it grows
        sys.stdout.write(piece)
        sys.stdout.flush()

    sample_from_checkpoint(ckpt, args.prompt, max_tokens=args.tokens, temperature=args.temperature, top_k=args.top_k,
                           num_samples=args.num_samples, seed=args.seed, device=args.device, on_text=show,
                           on_end=lambda: print("\n" + "-" * 40))
    return 0


def cmd_eval(args) -> int:
    # each mode's options named where the other mode would ignore them, rather than dropped without a word
    other = (["--val", "--val-tokens"], [args.val, args.val_tokens]) if args.what == "hellaswag" else \
        (["--data", "--limit"], [args.data, args.limit])
    given = [flag for flag, value in zip(*other) if value is not None]
    if given:
        mode = "val-loss eval (`speedrun eval [CHECKPOINT]`)" if args.what == "hellaswag" else "`speedrun eval hellaswag`"
        raise SpeedrunError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for {mode}, not this one")
    if args.what == "hellaswag":
        from speedrun.evals.hellaswag import evaluate_hellaswag
        evaluate_hellaswag(args.checkpoint or "latest", data=args.data, limit=args.limit, device=args.device)
    elif args.checkpoint is not None:
        raise SpeedrunError(f"eval {args.what} {args.checkpoint}: one checkpoint at a time (two arguments only "
                            f"in `eval hellaswag CHECKPOINT`)")
    else:
        # `--val` takes every word after it: `eval --val demo CKPT` reads CKPT as shards
        for item in args.val or []:
            if item == "latest" or item.endswith(".pt") or (os.path.isdir(item) and not glob.glob(
                    os.path.join(glob.escape(item), "*.bin")) and glob.glob(os.path.join(glob.escape(item), "*.pt"))):
                raise SpeedrunError(f"--val {item}: a checkpoint, not shards; --val takes every path after it, so "
                                    f"name the checkpoint first: speedrun eval {item} --val ...")
        from speedrun.evals.val_loss import evaluate_checkpoint
        evaluate_checkpoint(args.what, args.val, val_tokens=args.val_tokens, device=args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="speedrun", description="Train GPT-2-class models as fast as the hardware allows.")
    parser.add_argument("--version", action="version", version=f"speedrun {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe (CPU, one GPU, or a torchrun launch)")
    p.add_argument("--recipe", help=f"recipe name ({', '.join(recipe_names())}) or a .toml path; default: record21 on "
                                    f"a GPU machine, tiny otherwise")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field (repeatable), e.g. --set steps=200")
    p.add_argument("--data", metavar="DIR", help="train on a folder's NAME_train_NNNNNN.bin and validate on its "
                   "NAME_val_NNNNNN.bin (what `speedrun data tokenize` and `fineweb` write; one NAME a folder); the "
                   "same as --set train_files / val_files")
    p.add_argument("--device", choices=["cpu", "cuda"], help="force a device (cpu also runs GPU-only recipes)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved recipe, parameter counts, device plan and whether the data is ready; "
                        "do not train (exit code 1 where anything it checks is NOT READY: data, output folders, metrics)")
    p.add_argument("--log-dir", help="folder for run logs (default: logs; with --resume, the first part's log folder)")
    p.add_argument("--print-every", type=_at_least(1),
                   help="console progress every N steps (default: 1 up to 200 steps, else 10; the log has every step)")
    p.add_argument("--nproc", type=_at_least(1), default=1,
                   help="ranks on this machine (one per GPU, or CPU processes with gloo); > 1 starts torchrun")
    p.add_argument("--save-every", type=_at_least(0), help="a full checkpoint every N steps and at the end (default "
                   "0: the final weights only; on --resume, the checkpoint's setting, which 0 turns off)")
    p.add_argument("--keep-last", type=_at_least(0), help="keep the last N periodic checkpoints (default 0: all; on "
                   "--resume, the checkpoint's)")
    p.add_argument("--no-final-checkpoint", action="store_true", help="without --save-every, write no final model")
    p.add_argument("--checkpoint-dir", help="folder for checkpoints (default: checkpoints; on --resume, the resumed "
                                            "checkpoint's folder, so a run's checkpoints stay together)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log to Weights & Biases (pip install 'speedrun[wandb]')")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write TensorBoard scalars to DIR/<the run log's name>, a folder a run (pip install "
                        "'speedrun[tensorboard]')")
    p.add_argument("--resume", metavar="PATH|latest",
                   help="continue a run from a checkpoint (a folder: its newest; latest: the newest in "
                        "--checkpoint-dir)")
    p.add_argument("--compile-cache", metavar="FILE",
                   help="torch.compile's compiled kernels in one file: loaded before compiling (a fresh machine "
                        "launches in a fraction of the time), written as the run ends when it lacked some")
    p.set_defaults(func=train_command)

    data = sub.add_parser("data", help="get tokens in place: download FineWeb shards, tokenize text, inspect shards")
    data.set_defaults(func=cmd_data)
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="{fineweb,tokenize,inspect}")
    p = dsub.add_parser("fineweb", help="download cached GPT-2 FineWeb shards from the Hugging Face hub")
    p.add_argument("--variant", choices=["10B", "100B", "edu10B"], default="10B", help="which FineWeb tokens")
    p.add_argument("--train-shards", type=_at_least(None), default=8, help="number of train shards (100M tokens each)")
    p.add_argument("--dir", help="target folder (default: data/fineweb<variant>)")
    p = dsub.add_parser("tokenize", help="plain text / JSON lines / Parquet files -> train and val shards")
    p.add_argument("inputs", nargs="+", help="files or folders of them: .txt (one document per file, or see "
                   "--txt-docs), .jsonl/.json (JSON lines, a \"text\" field each), either maybe .gz/.xz/.bz2, or .parquet "
                   "(a \"text\" column)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--txt-docs", choices=["file", "lines", "paragraphs", "eot"], default="file",
                   help="how a .txt file divides into documents: the whole file, each line, text between blank "
                        "lines, or text between <|endoftext|> markers (as in TinyStories)")
    p.add_argument("--text-field", default="text", metavar="NAME", help="the JSON lines' field and Parquet column "
                   "that holds each document")
    p.add_argument("--val-from", action="append", metavar="PATH", help="files or folders (repeatable) whose "
                   "documents make the val shard, all of them (a dataset's own validation split); the inputs then go "
                   "to train whole")
    p.add_argument("--val-tokens", type=_at_least(0),
                   help="tokens of whole documents for the val shard (default: 10%% of the tokens or 10,485,760, "
                        "whichever is less; 0: no val shard)")
    p.add_argument("--shard-tokens", type=_at_least(1), default=100_000_000, help="tokens per train shard")
    p.add_argument("--workers", type=_at_least(0), default=0, help="processes (0: all cores)")
    p.add_argument("--name", default="data", help="shard file prefix: NAME_train_000000.bin, NAME_val_000000.bin")
    p = dsub.add_parser("inspect", help="check shards and show token / document statistics and a preview")
    p.add_argument("paths", nargs="+", help="shard files, folders or globs")
    p.add_argument("--preview", type=_at_least(0), default=200, help="tokens of the first document to decode")

    p = sub.add_parser("stats", help="final val loss, time and a one-sided t-test across run logs")
    p.add_argument("logs", nargs="*", default=["logs"], help="run log files or folders (default: logs, where "
                                                             "`speedrun train` writes them)")
    p.add_argument("--target", type=val_loss_target, default=3.28, help="val loss target")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("compare", help="a change against a baseline: final val loss paired by seed and unpaired, "
                                       "two-sided t-tests, and the training-time ratio")
    p.add_argument("pair", nargs="*", metavar="BASE CHANGE",
                   help="the baseline's and the change's log folder or file, one each (short for --base / --change)")
    p.add_argument("--base", nargs="+", help="the baseline's run log files or folders")
    p.add_argument("--change", nargs="+", help="the change's run log files or folders")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("plot", help="val loss against training time and steps, one line per run")
    p.add_argument("logs", nargs="*", default=["logs"], help="run log files or folders (default: logs, where "
                                                             "`speedrun train` writes them)")
    p.add_argument("-o", "--out", default="val_loss.png",
                   help="image to write, its type from the suffix: .png, .svg, .pdf, .jpg, ... (any type matplotlib "
                        "writes)")
    p.add_argument("--target", type=val_loss_target, default=3.28, help="val loss target (a dashed line)")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("records", help="rebuild the table in records/README.md from the record folders; "
                                       "--new NAME LOG... first makes a record")
    p.add_argument("--dir", default="records", help="the records folder")
    p.add_argument("--new", nargs="+", metavar="NAME_AND_LOGS",
                   help="NAME LOG...: make records/<today>_NAME/ from these run logs")
    p.add_argument("--command", help="(--new) the command that produced the runs")
    p.add_argument("--device", help="(--new) the machine, e.g. '8x H100 80GB' (default: the one the logs name)")
    p.add_argument("--target", type=val_loss_target, default=3.28, help="(--new) val loss target")
    p.add_argument("--notes", help="(--new) free text for the record's README")
    p.set_defaults(func=cmd_records)

    device_help = "cpu, cuda or cuda:N (default: a GPU when one is visible)"
    p = sub.add_parser("sample", help="generate text from a checkpoint")
    p.add_argument("checkpoint", nargs="?", default="latest",
                   help="a checkpoint file, a folder (its newest), or latest (the newest in checkpoints/; the default)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="text to continue (one document; default: empty, a new "
                        "document from the start)")
    prompt.add_argument("--prompt-file", dest="prompt", type=_prompt_file, metavar="FILE",
                        help="read the prompt from this UTF-8 text file (one trailing newline dropped)")
    # --max-new-tokens: the name nanoGPT's sample.py and Hugging Face's generate() use
    p.add_argument("--tokens", "--max-new-tokens", type=_at_least(1), default=100,
                   help="at most this many new tokens per sample")
    p.add_argument("--temperature", type=_temperature, default=0.8, help="softmax temperature (0: greedy)")
    p.add_argument("--top-k", type=_at_least(0), default=50, help="sample among the K likeliest tokens (0: all)")
    p.add_argument("--num-samples", type=_at_least(1), default=1, help="samples to print")
    p.add_argument("--seed", type=_at_least(None), default=0, help="random seed of the first sample (sample i: seed + i)")
    p.add_argument("--device", type=_device, help=device_help)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("eval", help="val loss of a checkpoint on any shards, or `eval hellaswag CHECKPOINT`")
    p.add_argument("what", nargs="?", default="latest",
                   help="a checkpoint file, a folder (its newest), latest (the newest in checkpoints/; the default), "
                        "or 'hellaswag'")
    p.add_argument("checkpoint", nargs="?",
                   help="(hellaswag) the checkpoint file, a folder (its newest), or latest (the default)")
    p.add_argument("--val", nargs="+", metavar="PATH",
                   help="(val loss) shard files, folders, globs or 'demo' (default: the checkpoint recipe's val_files)")
    p.add_argument("--val-tokens", type=_at_least(1),
                   help="(val loss) positions to score, a multiple of val_seq_len (default: the recipe's val_tokens)")
    p.add_argument("--data", help="(hellaswag) local hellaswag_val.jsonl instead of downloading")
    p.add_argument("--limit", type=_at_least(1), help="(hellaswag) first N items only")
    p.add_argument("--device", type=_device, help=device_help)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = argv
    sigterm_handler = terminate_on_sigterm()
    try:
        return args.func(args)
    except SpeedrunError as e:
        rank = os.environ.get("RANK") if int(os.environ.get("WORLD_SIZE") or 1) > 1 else None
        if rank is None:
            print(f"speedrun: error: {e}", file=sys.stderr)
        elif rank == "0" or not e.every_rank:
            print(f"speedrun: error: {'' if e.every_rank else f'rank {rank}: '}{e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`speedrun stats | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the flush at exit fails no more
        return 141
    except OSError as e:
        if e.filename is None and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            # writing the output (`> /dev/full`, a full disk): one line, and no second failure at exit's flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print(f"speedrun: error: writing the output: {e.strerror}", file=sys.stderr)
            return 1
        if e.filename is None:  # not about a file: a library's failure or a bug, with its traceback
            raise
        # the file system said no (disk full, read-only, gone): the file and the reason, not a traceback; a run's
        # log already ends "failed" with the same reason
        print(f"speedrun: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        # under torchrun every rank gets Ctrl-C, and torchrun passes a SIGTERM on to every rank: one line, not one a rank
        if os.environ.get("RANK", "0") == "0":
            what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
            print(f"speedrun: {what}" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return e.exit_code if isinstance(e, Terminated) else 130
    finally:  # a caller of main() in its own process (a test, a notebook) gets its SIGTERM handler back
        if sigterm_handler is not None:
            signal.signal(signal.SIGTERM, sigterm_handler)


def entry() -> None:
    """The `speedrun` command (and `python -m speedrun`): main(), then an exit whose code no signal changes. With torch
    loaded the interpreter takes most of a second to exit after the last line, and a Ctrl-C then turned a complete
    run's 0 into 130. Until the exit handlers have run, such a signal ends the process at once with main's code; in
    the teardown after them, where Python runs no handler of its own, signals are ignored."""
    atexit.register(_ignore_stop_signals)  # registered first, so run last
    code = main()
    note_exit_code(code)  # for the --nproc launcher

    def exit_now(signum, frame):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    set_stop_handlers(exit_now, exit_now)
    sys.exit(code)


def _ignore_stop_signals() -> None:
    set_stop_handlers(signal.SIG_IGN, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    entry()
