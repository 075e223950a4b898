"""What `speedrun train` checks and starts before a run: the checks every rank would otherwise fail one by one
(folders, data, --nproc against the GPUs and the recipe's batches, the compile-cache path), the torchrun launch of
N ranks, and the --dry-run report."""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from speedrun.errors import SpeedrunError
from speedrun.host import usable_cores
from speedrun.recipe import RecipeError
from speedrun.runlog import logged_command
from speedrun.words import plural

EXIT_FILE_ENV = "SPEEDRUN_EXIT_FILE"


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Start `nproc` ranks of `speedrun train` on this machine through torchrun (which ends every rank when one dies;
    the environment, NCCL_* included, is inherited); returns its exit code. Several machines: README, Multi-GPU.
    While it runs, Ctrl-C (which the terminal sends to torchrun and the ranks too) is only noted, and a SIGTERM or a
    SIGINT sent to this process alone is passed on to torchrun: the ranks finish their step, checkpoint and exit, and this
    process waits for them, instead of ending and leaving them training on; then it exits 130 or 143 as one process
    does."""
    torchrun = ["--standalone", f"--nproc_per_node={nproc}", "-m", "speedrun", *argv]
    cmd = [sys.executable, "-m", "speedrun.launch", *torchrun]  # torchrun itself, less its traceback on a signal
    env = dict(os.environ)
    # the ranks' argv lacks --nproc: their logs record the command as the user typed it
    env["SPEEDRUN_COMMAND"] = logged_command(sys.argv)
    # torchrun sets OMP_NUM_THREADS=1 where it is unset, with a banner asking to tune it: the ranks share the usable
    # cores instead (1 each on a 2-core machine, as torchrun's default), and a value the user set is kept
    threads = env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // nproc)))
    print(f"speedrun: launching {nproc} ranks: OMP_NUM_THREADS={threads} torchrun {' '.join(torchrun)}", flush=True)
    # rank 0 writes its exit code here: torchrun's is 128 + N whenever a signal reached it, even as a complete run
    # was exiting, where one process keeps its 0 (cli.entry)
    fd, exit_file = tempfile.mkstemp(prefix="speedrun-exit-")
    os.close(fd)
    env[EXIT_FILE_ENV] = exit_file
    got: list[int] = []
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum, frame):
        got.append(signum)
        # a terminal's Ctrl-C reaches torchrun and the ranks too; one sent to this process alone (`kill -INT PID`)
        # was only noted, and the run went on to its end: it is passed on, as SIGTERM is (an ignored one stays so)
        if signum == signal.SIGTERM or (previous[signal.SIGINT] is not signal.SIG_IGN and not _in_terminals_front()):
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        rank0 = ""
        with contextlib.suppress(OSError):  # a /tmp cleaner may have taken it: then no word from rank 0
            rank0 = Path(exit_file).read_text().strip()
            os.unlink(exit_file)
    if got and code != 0:
        # the ranks said where they stopped (and their checkpoint), or that the run is complete (rank 0 exited 0)
        return 0 if rank0 == "0" else 128 + got[-1]
    if code != 0:
        print(f"speedrun: error: a rank failed (torchrun exit code {code}); see the messages above", file=sys.stderr)
    return code


def note_exit_code(code: int) -> None:
    """Rank 0 under the --nproc launcher: its exit code, for the launcher (see launch_torchrun)."""
    if (path := os.environ.get(EXIT_FILE_ENV)) and os.environ.get("RANK") == "0":
        with contextlib.suppress(OSError):
            Path(path).write_text(str(code))


def _in_terminals_front() -> bool:
    """Whether this process is in its terminal's foreground process group, the one a Ctrl-C is sent to whole."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:  # no controlling terminal: a SIGINT came from a kill
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def strip_nproc(argv: list[str]) -> list[str]:
    return [a for i, a in enumerate(argv)
            if a != "--nproc" and not a.startswith("--nproc=") and (i == 0 or argv[i - 1] != "--nproc")]


def check_before_ranks(recipe, resume, args) -> None:
    """What every rank would refuse, checked once before torchrun starts: one error line, not N under its report."""
    from speedrun.run_data import check_run_data
    check_output_folders(args, resume)
    check_run_data(recipe, resume, args.nproc)


def output_folder_errors(args, resume) -> list[str]:
    """Why each of the run's output folders (log, checkpoints, TensorBoard's, the compile cache's) is not, and cannot
    be made, a folder to write in; [] when all can (leaves nothing behind: a dry run checks them too)."""
    from speedrun.checkpoint import checkpoint_folder, log_folder
    from speedrun.files import check_writable_folder
    folders = [(log_folder(args.log_dir, resume), "--log-dir"),
               (checkpoint_folder(args.checkpoint_dir, resume), "--checkpoint-dir")]
    if getattr(args, "tensorboard", None):
        folders.append((args.tensorboard, "--tensorboard"))
    errors = []
    for folder, flag in folders:
        try:
            check_writable_folder(folder, flag)
        except SpeedrunError as e:
            errors.append(str(e))
    if getattr(args, "compile_cache", None):  # a file, written as the run ends
        try:
            check_compile_cache_path(args.compile_cache)
        except SpeedrunError as e:
            errors.append(str(e))
    return errors


def check_output_folders(args, resume) -> None:
    """SpeedrunError (the first reason) unless every output folder of the run can be written in."""
    if errors := output_folder_errors(args, resume):
        raise SpeedrunError(errors[0])


def output_readiness(args, resume) -> tuple[list[str], bool]:
    """A dry run's lines on its outputs: folders it could not write in, and the metrics sinks' packages (their line
    either way, when --wandb or --tensorboard is given). Not errors: the report still prints; the exit code is 1."""
    from speedrun.metrics import readiness
    lines = [f"outputs: NOT WRITABLE: {e}" for e in output_folder_errors(args, resume)]
    ready, line = readiness(args.wandb, args.tensorboard)
    return lines + ([line] if line else []), not lines and ready


def data_readiness(recipe, resume, world_size: int) -> tuple[bool, str]:
    """The dry run's last line: whether the run's data checks pass (files there, valid, long enough). Not an error:
    the report above it still prints, as a dry run may well come before the data is downloaded; the exit code is 1."""
    from speedrun.run_data import check_run_data
    try:
        data = check_run_data(recipe, resume, world_size)
    except SpeedrunError as e:
        return False, f"data: NOT READY: {e}"
    tokens = sum(n for _, n in data.file_list)
    return True, (f"data: ready: {plural(len(data.train_files), 'train shard')} of {tokens:,} tokens, "
                  f"{plural(len(data.val_files), 'val shard')}")


def check_compile_cache_path(path: str) -> None:
    """Before any work: the cache file must be a file (or not exist yet) in a folder we can write in."""
    from speedrun.files import check_writable_folder
    if Path(path).is_dir():
        raise SpeedrunError(f"--compile-cache {path}: is a folder; give a file name, e.g. {Path(path) / 'fast.cache'}")
    check_writable_folder(Path(path).parent, "--compile-cache", shown=path)


def check_nproc(recipe, nproc: int, device: str | None, resumed: bool = False, dry_run: bool = False) -> list[str]:
    """Refuse, before torchrun starts N ranks that would each fail, an --nproc that the machine's GPUs or the
    recipe's batches cannot take: one line with a fix that passes these same checks. Returns notes on what would
    run, but not as well as it might (CPU ranks outnumbering the cores).

    A dry run refuses the batches alike (there is no split of the batch to report), but GPUs fewer than N are a
    note: it describes the plan for N GPUs on any machine, as it does at 1 rank where no GPU is visible."""
    import torch
    want = device or recipe.device
    if want == "auto":  # as make_plan decides, without touching a GPU in this launcher process
        want = "cuda" if torch.cuda.is_available() or recipe.gpu_only else "cpu"
    notes = []
    if want == "cuda" and nproc > (n := torch.cuda.device_count()):
        if not dry_run:
            raise SpeedrunError(f"--nproc {nproc}: recipe {recipe.name} runs on CUDA and " + (
                f"only {n} GPU(s) are visible; use --nproc {n}" if n else "no CUDA GPU is visible; use --device cpu"))
        if n:  # with none, make_plan says so
            notes.append(f"only {n} GPU(s) are visible here: this is the plan on {nproc} GPUs (training here would "
                         f"refuse; use --nproc {n})")
    try:
        recipe.grad_accum_steps(nproc)
        recipe.val_batches(nproc)
    except RecipeError as e:
        fits = lambda k: recipe.batch_tokens % (k * recipe.seq_len) == 0 == recipe.val_tokens % (k * recipe.val_seq_len)
        fewer = f"--nproc {max(k for k in range(1, nproc) if fits(k))}"  # 1 always fits (Recipe.check)
        if resumed:
            raise SpeedrunError(f"--nproc {nproc}: {e}; a resumed run keeps its recipe: use {fewer}") from None
        sets, unit, val_unit = [], nproc * recipe.seq_len, nproc * recipe.val_seq_len
        if recipe.batch_tokens % unit:  # rounded up: no fewer tokens per step
            sets.append(f"--set batch_tokens={math.ceil(recipe.batch_tokens / unit) * unit}")
        if recipe.val_tokens % val_unit:  # rounded down where it can be: the val files may hold no more
            sets.append(f"--set val_tokens={max(1, recipe.val_tokens // val_unit) * val_unit}")
        raise SpeedrunError(f"--nproc {nproc}: {e}; add {' '.join(sets)} (or use {fewer})") from None
    # it will run: a note (not an error) where CPU ranks outnumber the cores
    if want == "cpu" and nproc > (cores := usable_cores()):
        notes.append(f"--nproc {nproc} on {cores} CPU core(s): the ranks share cores, so the run is slower than with "
                     f"--nproc {cores} (the same tokens and steps; on a CPU the losses match another rank count's at "
                     f"the same thread count: each rank runs OMP_NUM_THREADS threads)")
    return notes


def dry_run_report(recipe, plan) -> str:
    """Resolved recipe, parameter counts per optimiser group (model built on the meta device), tokens, plan."""
    import torch

    from speedrun.model.gpt import GPT
    with torch.device("meta"):
        model = GPT(recipe, attention=plan.attention)
    groups = model.param_groups()
    count = lambda ps: sum(p.numel() for p in ps)
    total = count(model.parameters())
    lines = [f"recipe {recipe.name}: {recipe.description or '(no description: a recipe file may set one)'}",
             json.dumps(recipe.to_dict(), indent=1), "",
             f"parameters: {total:,} in total (built on the meta device: no weights allocated)"]
    tied = model.lm_head.weight is model.embed.weight
    labels = {"muon": "Muon (block matrices)",
              "embed": "Adam embeddings (value)" if tied else "Adam embeddings (token + value)",
              "head": "Adam head = token embedding (tied)" if tied else "Adam head", "scalar": "Adam scalars"}
    for key, label in labels.items():
        lines.append(f"  {label:<34} {count(groups[key]):>13,}  ({plural(len(groups[key]), 'tensor')})")
    assert sum(count(g) for g in groups.values()) == total, "optimiser groups must cover every parameter once"
    gpt2_like = count(groups["muon"]) + model.embed.weight.numel() + count(groups["scalar"])
    lines.append(f"  as GPT-2 counts ('124M' for GPT-2 small: the blocks and one token embedding, its head tied to it): "
                 f"{gpt2_like:,}; " + (f"{recipe.value_embeds} value embeddings add the rest" if tied else
                                        f"the untied head and {recipe.value_embeds} value embeddings add the rest"))
    lines.append(f"tokens: {recipe.batch_tokens:,} per step, {recipe.batch_tokens * recipe.steps:,} over "
                 f"{recipe.steps} steps; validation {recipe.val_tokens:,} tokens")
    lines += ["device plan:", *("  " + l for l in plan.describe(recipe).splitlines())]
    return "\n".join(lines)


def torchrun_main() -> int:
    """torchrun (the launcher starts it as `python -m speedrun.launch ARGS`). A signal that reaches it (Ctrl-C, or the
    SIGTERM passed on) makes it raise SignalException, whose traceback would follow the ranks' one-line report: it
    ends with 128 + the signal's number instead, as a process killed by it would. A failed rank has printed why (its
    `speedrun: error:` line): torchrun's ChildFailedError, a traceback and a report, would follow it; it ends with 1
    instead, torchrun's own code for it, and the launcher's one line says a rank failed."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main
    try:
        main()
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        # a rank killed by a signal (the kernel's out-of-memory killer, a segfault) printed nothing: name it
        for rank, failure in sorted(e.failures.items()):
            if failure.exitcode < 0:
                print(f"speedrun: error: rank {rank} (pid {failure.pid}) was killed by {failure.signal_name()}",
                      file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(torchrun_main())
