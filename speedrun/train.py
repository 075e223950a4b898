"""The training loop: untimed warm-up + restore, timed steps, validation, checkpoints, failures.

One process (CPU or one GPU) or one rank of a torchrun launch; only rank 0 prints and writes the log and
checkpoints. The clock covers training steps only (stopped, after a device sync, for validation and checkpoints).
A resumed run still warms up (that compiles the kernels), then loads the checkpoint's model, optimisers, stream
position, RNG, clock and losses and goes on from its step: on CPU bit for bit as an uninterrupted run.
"""

import contextlib
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from speedrun import PROCESS_START
from speedrun import checkpoint as ckpt_mod
from speedrun.build import build_model, build_optimizers, compiled_runner
from speedrun.checkpoint_keeper import CheckpointKeeper
from speedrun.compile_cache import CompileCache
from speedrun.distributed import barrier_if_distributed
from speedrun.errors import Terminated, TrainingError
from speedrun.files import check_writable_folder
from speedrun.interrupt import Interrupted, StopRequest, StopVote
from speedrun.metrics import Metrics
from speedrun.model.gpt import GPT
from speedrun.plan import Plan, keep_large_allocations
from speedrun.recipe import Recipe
from speedrun.run_data import check_run_data
from speedrun.runlog import RunLog, new_run_id
from speedrun.step import evaluate, format_phases, train_step, warmup_and_restore
from speedrun.words import plural


@dataclass
class RunResult:
    log_path: str | None
    val_losses: list[tuple[int, float]]
    train_losses: list[float]
    training_time_ms: float
    peak_allocated_mib: int | None = None
    model: GPT | None = None
    checkpoint_path: str | None = None  # the final checkpoint (rank 0)
    late_signal: str | None = None  # "SIGINT" / "SIGTERM" that came after the last stop vote: the run went on to its end
    stop: StopRequest | None = None  # the loop's handlers, still noting signals where the caller holds them (run())

    def signal_since_end(self) -> str | None:
        """late_signal, or a signal the held handlers noted after the log's end line."""
        if self.late_signal is None and self.stop is not None and self.stop.signum is not None:
            self.late_signal = signal.Signals(self.stop.signum).name
        return self.late_signal


class Clock:
    """Training ms. `stop`/`start` sync the device first, so queued GPU work counts where it belongs; `now` does
    not (per-step log times, which may lag the GPU)."""

    def __init__(self, device: torch.device, ms: float = 0.0):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.ms, self.t0 = ms, 0.0

    def start(self) -> None:
        self.sync()
        self.t0 = time.perf_counter()

    def stop(self) -> float:
        self.sync()
        self.ms += 1000 * (time.perf_counter() - self.t0)
        return self.ms

    def now(self) -> float:
        return self.ms + 1000 * (time.perf_counter() - self.t0)


class DeferredScalar:
    """Reads a GPU scalar one step late, so logging a loss never stalls the queue of GPU work."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending = None

    def push(self, tag, value: torch.Tensor):
        if self.cuda:
            host = torch.empty((), dtype=torch.float32, pin_memory=True)
            host.copy_(value.float(), non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            value = (host, event)
        out = self.pop()
        self.pending = (tag, value)
        return out

    def pop(self):
        if self.pending is None:
            return None
        tag, value = self.pending
        self.pending = None
        if self.cuda:
            host, event = value
            event.synchronize()
            return tag, host.item()
        return tag, value.item()


def run(r: Recipe, plan: Plan, log_dir: str | None = None, print_every: int | None = None, say=print,
        save_every: int | None = None, checkpoint_dir: str | None = None, resume=None, keep_last: int = 0,
        save_final: bool = False, metrics: Metrics | None = None, compile_cache: str | None = None,
        hold_signals: contextlib.ExitStack | None = None) -> RunResult:
    """Train `r` under `plan`. Returns the losses and the log path; raises TrainingError on a dead run.

    save_every: a full checkpoint every N steps and at the end (None on resume: the checkpoint's); keep_last: how
    many periodic ones to keep (0: all); save_final: else the final weights. checkpoint_dir: None is the resumed
    checkpoint's folder, else `checkpoints`; log_dir likewise (None: the first part's log folder, else `logs`). resume: a checkpoint (path) of this recipe, continued from its step
    with a new log (the losses returned cover the whole run). metrics: wandb / TensorBoard sinks (rank 0).
    compile_cache: a file of torch.compile artifacts, loaded before compiling and (rank 0) written as the run ends
    when it compiled anything the file lacked (speedrun.compile_cache). hold_signals: the timed loop's SIGINT /
    SIGTERM handlers move into it once the run ends well, so that a signal after the log's end line is noted
    (RunResult.signal_since_end) until the caller closes it, with no moment between where it would act.
    """
    try:
        trainer = Trainer(r, plan, log_dir, print_every, say, save_every, checkpoint_dir, resume, compile_cache)
        trainer.keeper.keep_last, trainer.keeper.save_final = keep_last, save_final
        trainer.hold_signals = hold_signals
        if metrics is not None and plan.main:
            metrics.start(trainer.log.path.stem)  # its TensorBoard folder and wandb run named as its log
            trainer.metrics = metrics
        result = trainer.train()
    finally:
        closing = StopRequest()  # a signal while the sinks flush (wandb: seconds): the run has ended either way
        if metrics is not None:
            with closing:
                metrics.close()
    if closing.signum is not None and result.late_signal is None:
        result.late_signal = signal.Signals(closing.signum).name
    return result


class Laps:
    """Seconds of each set-up phase, from the package's import on: where launch time goes before compiling."""

    def __init__(self):
        self.t, self.laps = PROCESS_START, {}

    def __call__(self, name: str) -> None:
        now = time.time()
        self.laps[name], self.t = now - self.t, now

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.1f}" for name, s in self.laps.items())


class Trainer:
    """One run's components (stream, model, optimisers, log, checkpoint keeper) and its loop."""

    def __init__(self, r: Recipe, plan: Plan, log_dir, print_every, say, save_every, checkpoint_dir, resume,
                 compile_cache=None):
        self.r, self.plan = r, plan
        self.laps = laps = Laps()
        laps("imports+plan")  # since the package's import: torch, the command line, the recipe, the device plan
        self.ckpt = _checked_resume(resume, r)
        if save_every is None and self.ckpt is not None:
            save_every = self.ckpt.save_every
        self.save_every = save_every or 0
        checkpoint_dir = ckpt_mod.checkpoint_folder(checkpoint_dir, self.ckpt)
        log_dir = ckpt_mod.log_folder(log_dir, self.ckpt)
        if plan.main:
            check_writable_folder(log_dir, "--log-dir")
            check_writable_folder(checkpoint_dir, "--checkpoint-dir")
        data = check_run_data(r, self.ckpt, plan.world_size, plan.rank, plan.device)
        self.val_files, file_list, self.stream = data.val_files, data.checkpoint_files, data.stream
        laps("data")
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
        else:
            keep_large_allocations()
        self.model = build_model(r, plan)
        if self.ckpt is not None:
            ckpt_mod.check_weights_fit(self.model, self.ckpt)
        if plan.world_size > 1:
            for p in self.model.parameters():
                torch.distributed.broadcast(p.detach(), 0)
        laps("model")
        if plan.compile:
            from torch import _dynamo  # noqa: F401 (the first torch.compile imports the compiler: seconds, shown apart)

            laps("compiler import")
        self.compile_cache = None
        self.hold_signals: contextlib.ExitStack | None = None  # run()'s
        self.where = "the timed loop"  # the step or phase under way (_loop), named if a second Ctrl-C cuts it short
        if compile_cache is not None and plan.compile:
            self.compile_cache = CompileCache(Path(compile_cache), plan.device)
            self.compile_cache.load()  # before the optimisers' and the model's compiles
            laps("compile cache")
        self.optimizers = build_optimizers(self.model, r, compile_ns=plan.compile)
        self.runner = compiled_runner(self.model, plan)
        laps("optimisers")
        self.print_every = print_every or (1 if r.steps <= 200 else 10)
        self.log = RunLog(log_dir, r.name, r.to_dict(), enabled=plan.main, run_id=_shared_run_id(plan),
                          sections={"plan": plan.describe(r), "data": data.describe() if plan.main else ""})
        laps("log")
        self.say = say if plan.main else (lambda *a, **k: None)
        self.keeper = CheckpointKeeper(self, checkpoint_dir, file_list)
        if self.ckpt is not None:  # --keep-last counts the first part's checkpoints too: one run, resumed
            self.keeper.periodic = ckpt_mod.earlier_parts(self.ckpt.path, checkpoint_dir)
            self.keeper.last_full = Path(self.ckpt.path)
        self.metrics = Metrics()

    def train(self) -> RunResult:
        r, plan, say, log = self.r, self.plan, self.say, self.log
        say(f"speedrun: recipe {r.name}, {r.steps} steps of {r.batch_tokens:,} tokens; log {log.path}")
        for line in plan.describe(r).splitlines():
            say(f"  {line}")
        if self.compile_cache is not None:
            say(f"  {self.compile_cache.message}")
            log.note(self.compile_cache.message)
        self.keeper.clear_leftovers()
        t_launch = time.perf_counter()
        setup_s = time.time() - PROCESS_START  # before any compiling
        timed = False  # the timed loop has begun (a Ctrl-C before it leaves nothing to resume)
        with contextlib.ExitStack() as ending:
            try:
                first = warmup_and_restore(self.runner, self.optimizers, r, plan, self.model.window(0), say)
                start = self._restore() if self.ckpt is not None else RunResult(None, [], [], 0.0)
                if plan.device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                warm_s = time.perf_counter() - t_launch
                say(f"warm-up: {plural(r.warmup_steps, 'untimed step')} and state restore in {warm_s:.1f}s "
                    f"(after {setup_s:.1f}s of setup: {self.laps})")
                # where a launch goes, kept with the run (the first warm-up step is where torch.compile compiles)
                log.write(f"launch_phases: setup {setup_s:.1f}s ({self.laps}); warm-up {warm_s:.1f}s"
                          + (f" (first step: {format_phases(first)})" if first else ""))
                if self.compile_cache is not None:
                    self._note(self.compile_cache.graph_counts())
                timed = True
                # its handlers stay until the log's end line: a signal after the last stop vote lets the run finish
                stop = ending.enter_context(StopRequest())
                result = self._loop(start, stop)
            except torch.OutOfMemoryError as e:
                log.finish(False, f"out of memory: {str(e).splitlines()[0] if str(e) else ''}")
                raise TrainingError(out_of_memory_advice(r, plan)) from None
            except BaseException as e:
                if isinstance(e, Interrupted):
                    reason = e.log_reason
                elif isinstance(e, KeyboardInterrupt):  # a signal the timed loop's stop request did not take
                    name = 'SIGTERM' if isinstance(e, Terminated) else 'SIGINT'
                    if not timed:
                        reason = f"{name}: interrupted before the first timed step (compile, warm-up)"
                    else:  # a second Ctrl-C: at once, without the checkpoint a first one writes; say what is left
                        last = self.keeper.last_full
                        reason = (f"{name}: interrupted at once in the timed loop, in {self.where}; no checkpoint of "
                                  "this stop" + (f" (the last: {last})" if last else ""))
                else:
                    reason = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
                log.finish(False, reason)
                if timed and isinstance(e, KeyboardInterrupt) and not str(e):
                    raise type(e)(reason) from None  # the CLI's line says it too
                raise
            finally:
                self._save_compile_cache()
            if stop.signum is not None:  # it came after the last stop vote: the run went on to its end
                self._note(f"{signal.Signals(stop.signum).name} came as the run was ending: it finished its last step "
                           "and validation (complete; nothing to resume)")
            log.finish(True)
            if self.hold_signals is not None:  # the caller's last lines and sample under the same handlers
                self.hold_signals.enter_context(ending.pop_all())
                result.stop = stop
        if stop.signum is not None:
            result.late_signal = signal.Signals(stop.signum).name
        result.log_path = str(log.path) if plan.main else None
        result.model = self.model
        return result

    def _save_compile_cache(self) -> None:
        """Once, as the run ends in any way (torch's packed artifacts cannot be saved twice in one process: a second
        pack holds the first's entries but loads only its own), so the file also has what validation compiled."""
        if self.compile_cache is not None and self.plan.main:
            done = self.compile_cache.save()
            if done:
                self._note(done)

    def _note(self, text: str) -> None:
        """Say `text` and keep it in the run log as a note."""
        self.say(text)
        self.log.note(text)

    def _restore(self) -> "RunResult":
        """Load the resumed checkpoint's state into the model, optimisers and RNG; its losses and clock so far."""
        ckpt = self.ckpt
        ckpt_mod.load_weights(self.model, ckpt)
        for opt, state in zip(self.optimizers, ckpt.optimizers):
            opt.load_state_dict(state)
        ckpt_mod.restore_rng(ckpt.rng)
        first = ckpt_mod.first_log(ckpt)  # the path it is at from here (stats joins the parts by its name)
        self.log.note(f"resumed from {ckpt.path} at step {ckpt.step}"
                      + (f" (earlier steps: log {first or ckpt.log_path})" if ckpt.log_path else ""))
        lost = (f"; the first part's log {ckpt.log_path} is not found here (copied without it?): this part's log "
                f"is {self.log.path}") if ckpt.log_path and first is None else ""
        if lost:
            self.log.note(lost[2:])
        self.say(f"resumed from {ckpt.path} at step {ckpt.step} of {self.r.steps} "
                 f"({ckpt.train_time_ms / 1000:.1f}s of training so far){lost}")
        return RunResult(None, list(ckpt.val_losses), list(ckpt.train_losses), ckpt.train_time_ms)

    def _loop(self, result: RunResult, stop: StopRequest) -> RunResult:
        """From `result`'s state (empty, or a resumed checkpoint's) to the last step."""
        r, plan, say, log = self.r, self.plan, self.say, self.log
        window = self.model.window
        first = self.ckpt.step if self.ckpt is not None else 0
        self.result, self.clock = result, Clock(plan.device, result.training_time_ms)
        self.printed = (first, result.training_time_ms)  # the last step line's step and clock: the next one's interval
        clock = self.clock
        self.losses = DeferredScalar(plan.device)
        self.step_times: dict[int, float] = {}
        vote = StopVote(stop, plan.world_size, plan.device)

        clock.start()
        for step in range(first, r.steps + 1):
            last = step == r.steps
            validate = last or (r.val_every > 0 and step % r.val_every == 0)
            if validate:
                clock.stop()
                self._report(self.losses.pop())
                self.where = f"step {step}'s validation"  # what a second Ctrl-C cut short, for its message
                self._validate(step, window(step))
                clock.start()
            if step == first:
                launch_s = time.time() - PROCESS_START
                log.write(f"launch_to_first_step_s:{launch_s:.1f}")
                say(f"launch to first timed step: {launch_s:.1f}s (from import; includes compile, warm-up"
                    + (f", step-{step} val)" if validate else ")"))
            if last:
                break
            try:
                batches = self.stream.next_step()
            except StopIteration:
                raise TrainingError(
                    f"the train files ran out at step {step} of {r.steps}; add shards or set train_loop = true"
                ) from None
            self.where = f"step {step + 1}"
            loss = train_step(self.runner, batches, self.optimizers, step, window(step), r, plan.world_size)
            self.step_times[step + 1] = clock.now()
            self._report(self.losses.push(step + 1, loss))
            done = step + 1
            signum = vote.poll() if done < r.steps else None
            if signum is not None or (self.save_every > 0 and done % self.save_every == 0 and done < r.steps):
                clock.stop()  # off the clock, and this step's loss reported first so that the checkpoint holds it
                self._report(self.losses.pop())
                if signum is not None:
                    say(f"{signal.Signals(signum).name}: stopping after step {done}; writing a checkpoint")
                self.where = f"the checkpoint after step {done}"
                path = self.keeper.save(done)
                if signum is None and (signum := vote.poll_now()) is not None:  # it came during the periodic save
                    say(f"{signal.Signals(signum).name} came during the checkpoint: stopping on it")
                if signum is not None:
                    barrier_if_distributed(plan.world_size)
                    raise Interrupted(done, path, signum)
                clock.start()
        result.training_time_ms = clock.ms
        if plan.device.type == "cuda":
            alloc = torch.cuda.max_memory_allocated(plan.device) // 2**20
            reserved = torch.cuda.max_memory_reserved(plan.device) // 2**20
            result.peak_allocated_mib = alloc
            log.write(f"peak_memory allocated:{alloc} MiB reserved:{reserved} MiB")
            say(f"peak memory: {alloc:,} MiB allocated, {reserved:,} MiB reserved")
        log.write(f"training_time_ms:{clock.ms:.0f}")
        self.where = "the final checkpoint"
        path = self.keeper.save(r.steps, weights_only=self.save_every == 0)
        result.checkpoint_path = str(path) if path is not None and plan.main else None
        return result

    def _validate(self, step: int, window) -> None:
        r, result = self.r, self.result
        if r.sampled_head_rows:  # read here, where the run waits for the GPU anyway
            left = self.model.head_left_out.clone()
            if self.plan.world_size > 1:
                torch.distributed.all_reduce(left, op=torch.distributed.ReduceOp.MAX)
            if left.item() > 0:
                self.keeper.fail(f"sampled_head_rows={r.sampled_head_rows} is too few: a training step before step "
                                 f"{step} had {left.item()} more distinct target tokens than that",
                                 advice="raise sampled_head_rows, or set it to 0")
        val = evaluate(self.runner, r, self.plan, window, self.val_files)
        if not math.isfinite(val):
            self.keeper.fail(f"step {step}: val loss is {val}")
        result.val_losses.append((step, val))
        if step < r.steps:
            self.keeper.remember(step)  # every loss so far is finite: a known-good state
        self.log.val(step, r.steps, val, self.clock.ms)
        self.metrics.val(step, val, self.clock.ms)
        self.say(f"step {step:>5}/{r.steps} | val_loss {val:.4f} | train_time {self.clock.ms / 1000:.1f}s")

    def _report(self, item) -> None:
        """Log a step's train loss once it has been read back; stop on a non-finite one."""
        if item is None:
            return
        step, loss = item
        r = self.r
        if not math.isfinite(loss):
            self.keeper.fail(f"step {step}: train loss is {loss}")
        self.result.train_losses.append(loss)
        t = self.step_times.pop(step)
        tok_s = step * r.batch_tokens / (t / 1000) if t > 0 else 0.0
        self.log.step(step, r.steps, t, loss, tok_s)
        self.metrics.step(step, loss, tok_s, t / step)
        if step % self.print_every == 0 or step == r.steps:
            # speed over the steps since the last line, so that a slow stretch shows (the log keeps the mean so far);
            # the time left from the mean so far, steadier
            (since, t0), self.printed = self.printed, (step, t)
            ms = (t - t0) / (step - since)
            eta = (r.steps - step) * t / step / 1000
            self.say(f"step {step:>5}/{r.steps} | loss {loss:.4f} | {r.batch_tokens / ms * 1000 if ms > 0 else 0:,.0f} "
                     f"tok/s | {ms:.0f} ms/step | ETA {_fmt_time(eta)}")


def _checked_resume(resume, r: Recipe):
    """The checkpoint to resume (loaded if a path), checked to continue recipe `r`; None for a fresh run."""
    if resume is None:
        return None
    ckpt = resume if isinstance(resume, ckpt_mod.Checkpoint) else ckpt_mod.load(resume)
    diff = ckpt_mod.recipe_differences(ckpt.recipe, r)
    if diff:
        raise ckpt_mod.CheckpointError(f"{ckpt.path}: the checkpoint's recipe differs in {', '.join(diff)}")
    if ckpt.complete:
        raise ckpt_mod.CheckpointError(f"{ckpt.path}: the run is complete (step {ckpt.step} of {r.steps}); "
                                       f"nothing to resume")
    return ckpt


def _shared_run_id(plan: Plan) -> str:
    """Rank 0's run id on every rank: the checkpoint paths that every rank names (in errors) are the ones written."""
    run_id = [new_run_id()]
    if plan.world_size > 1:
        torch.distributed.broadcast_object_list(run_id, src=0)
    return run_id[0]


def out_of_memory_advice(r: Recipe, plan: Plan) -> str:
    """One line naming the settings that bound memory, with values that would fit in less."""
    accum = r.grad_accum_steps(plan.world_size)
    final_window = -(-r.window_ramp_tokens // r.attn_block_size) * r.attn_block_size
    half = r.seq_len // 2
    can_halve = half % r.attn_block_size == 0 and half >= final_window and r.batch_tokens % (plan.world_size * half) == 0
    fix = (f"--set seq_len={half} (micro-batches of {half:,} tokens, {2 * accum} accumulation steps, same training)"
           if can_halve else "a smaller seq_len that divides batch_tokens / ranks (more accumulation steps)")
    return (f"out of GPU memory with seq_len={r.seq_len:,} tokens per micro-step ({accum} accumulation step(s)) "
            f"and val_seq_len={r.val_seq_len:,}: try {fix}, or a smaller val_seq_len")


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
