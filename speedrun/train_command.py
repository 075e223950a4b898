"""What `speedrun train` does between its parsed arguments and the run: checks that need no GPU time, torchrun for
--nproc N, --dry-run's report (for N ranks under --nproc N, in this process), the run itself, then the sample and
the last line."""

import contextlib
import os
import sys
import time

from speedrun.errors import SpeedrunError, Terminated, signals_act
from speedrun.launch import (
    check_before_ranks,
    check_compile_cache_path,
    check_nproc,
    data_readiness,
    dry_run_report,
    launch_torchrun,
    output_readiness,
    strip_nproc,
)
from speedrun.recipe import load_recipe


def train_command(args) -> int:
    """`speedrun train`: the checks before any work, torchrun for --nproc N, the dry run's report, the run, its
    sample and its last line. Returns the exit code."""
    import torch
    # options that would do nothing: said, not ignored (on --resume, without --save-every: the checkpoint's setting)
    if args.keep_last and not args.save_every and not args.resume:
        args.command_parser.error("--keep-last keeps the newest periodic checkpoints: give --save-every N too")
    if args.no_final_checkpoint and args.save_every:
        args.command_parser.error("--no-final-checkpoint is for runs without --save-every (which writes a full "
                                  "checkpoint at the end)")
    save_every, keep_last = args.save_every or 0, args.keep_last or 0
    if args.data:
        from speedrun.run_data import data_folder_overrides
        args.overrides = data_folder_overrides(args.data, args.overrides) + args.overrides
    resume = None
    for flag, value, want in (("--resume", args.resume, "an empty path; give a checkpoint, a folder or latest"),
                              ("--wandb", args.wandb, "an empty project name"),
                              ("--tensorboard", args.tensorboard, "an empty path; give a folder")):
        if value is not None and not value.strip():  # `--resume "$CKPT"` with CKPT unset: not what was meant
            args.command_parser.error(f"{flag}: {want}")
    if args.resume:
        # A resumed run continues the checkpoint's recipe (checked here, once, before any rank starts).
        from speedrun.checkpoint import load_for_resume
        resume = load_for_resume(args.resume, args.checkpoint_dir, args.recipe, args.overrides)
        if args.save_every is None:
            save_every = resume.save_every
            if args.no_final_checkpoint and save_every:
                args.command_parser.error(f"--no-final-checkpoint: the resumed run saves every {save_every} steps and "
                                          f"at the end, as its checkpoint's run did (--save-every 0 turns that off)")
        if args.keep_last is None and save_every:
            keep_last = resume.keep_last
        if args.keep_last and not save_every:
            args.command_parser.error("--keep-last keeps the newest periodic checkpoints: the resumed run writes none "
                                      "(give --save-every N)")
    # Read before torchrun starts too: a bad key should not cost N process starts.
    recipe = resume.recipe if resume is not None else load_recipe(
        args.recipe or ("record21" if torch.cuda.is_available() else "tiny"), args.overrides)
    if args.compile_cache and not args.dry_run:  # a dry run reports it with the other outputs
        check_compile_cache_path(args.compile_cache)  # before torchrun: one error, not one per rank
    launcher, nproc_notes = args.nproc > 1 and "RANK" not in os.environ, []
    if launcher:
        nproc_notes = check_nproc(recipe, args.nproc, args.device, resumed=resume is not None, dry_run=args.dry_run)
        if not args.dry_run:  # a dry run is a report, not a launch: it plans for N ranks below, in this process
            for note in nproc_notes:
                print(f"note: {note}", file=sys.stderr)
            check_before_ranks(recipe, resume, args)
            # Ctrl-C reaches torchrun and every rank; the ranks finish the step, checkpoint and exit. Wait for them
            # (subprocess.call would kill torchrun on KeyboardInterrupt), then exit 130 as a single process does.
            # A SIGTERM sent to this process alone is passed on to torchrun (to every rank): they stop the same way.
            return launch_torchrun(args.nproc, strip_nproc(args.argv))

    from speedrun.distributed import init_distributed, shutdown_distributed
    from speedrun.interrupt import Interrupted
    from speedrun.plan import make_plan
    from speedrun.train import run
    plan = make_plan(recipe, force_device=args.device, dry_run=args.dry_run,
                     world_size=args.nproc if launcher else None)  # a dry run's --nproc N: the plan for N ranks
    if args.dry_run:
        plan.notes += nproc_notes
        ready, line = data_readiness(recipe, resume, plan.world_size)  # every rank: they exit alike
        outputs, writable = output_readiness(args, resume)
        if plan.main:  # under torchrun by hand, one report, not N
            print(dry_run_report(recipe, plan))
            if resume is not None:
                print(f"resume: {resume.path} at step {resume.step:,} of {recipe.steps:,}")
            print("\n".join([line, *outputs]))
        if not plan.main:  # under torchrun by hand: rank 0's report and exit code answer; a rank exiting 1 first
            return 0  # would have torchrun kill rank 0 before its report
        return 0 if ready and writable else 1  # `speedrun train --dry-run && speedrun train` waits for the data
    if args.compile_cache and not plan.compile and plan.main:
        print(f"note: torch.compile is off for this run: --compile-cache {args.compile_cache} is not used")
    metrics = None
    if (args.wandb or args.tensorboard) and plan.main:
        from speedrun.metrics import open_metrics
        # opened here, so that a missing package or a wandb login stops the run before any work; named as the
        # run's log once the log exists (Metrics.start): one TensorBoard folder a run
        metrics = open_metrics(f"{time.strftime('%Y%m%d-%H%M%S')}_{recipe.name}", recipe.to_dict(), args.wandb,
                               args.tensorboard)
    init_distributed(plan)
    # the loop's signal handlers stay until the end: a signal after the log's end line only skips the sample
    with contextlib.ExitStack() as held:
        try:
            result = run(recipe, plan, log_dir=args.log_dir, print_every=args.print_every,
                         save_every=save_every, checkpoint_dir=args.checkpoint_dir, resume=resume,
                         keep_last=keep_last, save_final=not args.no_final_checkpoint, metrics=metrics,
                         compile_cache=args.compile_cache, hold_signals=held)
        except Interrupted as e:
            if plan.main:
                print(f"speedrun: error: {e}", file=sys.stderr)
            return e.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
        finally:
            shutdown_distributed()
        if plan.main:
            if recipe.sample_tokens > 0 and result.signal_since_end():  # the user asked it to stop: no more work
                print(f"note: no sample ({result.late_signal} came as the run was ending)", file=sys.stderr)
            elif recipe.sample_tokens > 0:
                try:
                    with signals_act():  # a signal during the sample skips only the sample
                        from speedrun.evals.sample import generate
                        text = generate(result.model, recipe.sample_prompt, recipe.sample_tokens, seed=recipe.seed)
                    print(f"sample: {text!r}")
                except SpeedrunError as e:  # the run itself is complete: its log and checkpoint stand
                    print(f"note: {e}", file=sys.stderr)
                except KeyboardInterrupt as e:
                    print(f"note: no sample ({'SIGTERM' if isinstance(e, Terminated) else 'SIGINT'} came during it; "
                          f"the run is complete)", file=sys.stderr)
            (first_step, first), (_, last) = result.val_losses[0], result.val_losses[-1]
            # with val_every=0 only the end is validated: no "A -> A"
            start = f"{first:.4f} -> " if first_step == 0 and len(result.val_losses) > 1 else ""
            print(f"done: val_loss {start}{last:.4f} in {result.training_time_ms / 1000:.1f}s of training; "
                  f"log {result.log_path}" + (f"; model: {result.checkpoint_path}" if result.checkpoint_path else ""))
    return 0
