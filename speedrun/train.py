"""The training loop: device plan, model and optimisers, untimed warm-up + restore, timed steps, validation.

Runs as one process (CPU or one GPU) or as one rank of a torchrun launch (NCCL on GPU, gloo on CPU): ranks
average gradients before the optimisers step, and only rank 0 prints and writes the run log.

Checkpoints (speedrun/checkpoint.py): every `save_every` steps and at the end when save_every > 0, and when
SIGINT / SIGTERM arrives during the timed loop (the current step finishes first; then Interrupted is raised).
`resume=` continues a checkpoint's run exactly: warm-up + restore still runs (it compiles the kernels), then the
model, optimisers, stream position, RNG, step, clock and loss history are loaded and the loop goes on from that
step, so the losses and parameters match an uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from speedrun import PROCESS_START
from speedrun.data.demo import data_files
from speedrun.data.shards import shard_header
from speedrun.data.stream import BatchStream, StreamPosition, check_val_size, val_batches
from speedrun.errors import SpeedrunError
from speedrun.kernels import linear_relu2
from speedrun.model.fp8 import fp8_supported
from speedrun.model.gpt import GPT, MLP, CastedLinear
from speedrun.optim.muon import Muon
from speedrun.optim.schedule import lr_multiplier, muon_momentum
from speedrun.recipe import Recipe, RecipeError
from speedrun.runlog import RunLog


class TrainingError(SpeedrunError, RuntimeError):
    """The run cannot go on (non-finite loss, no GPU for a GPU-only recipe, ...). One-line message."""


class Interrupted(SpeedrunError):
    """SIGINT / SIGTERM stopped the run after a finished step and a checkpoint. The CLI exits with 128 + signal
    number (130 for Ctrl-C, 143 for SIGTERM), the shell convention for a process ended by a signal."""

    def __init__(self, step: int, path, signum: int):
        self.step, self.path, self.signum = step, str(path), signum
        self.exit_code = 128 + signum
        self.log_reason = f"interrupted at step {step}; checkpoint {path}"
        super().__init__(f"{signal.Signals(signum).name}: {self.log_reason} (continue with --resume {path})")


class StopRequest:
    """SIGINT / SIGTERM handlers for the timed loop: the first signal asks the loop to stop after the current
    step (and checkpoint); a SIGINT more than `grace_s` later raises KeyboardInterrupt at once. (Within the grace
    time it is the same Ctrl-C arriving twice: from the terminal and forwarded by torchrun.) The previous
    handlers come back on exit. Only the main thread can own signal handlers: elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, grace_s: float = 2.0):
        self.signum: int | None = None
        self.grace_s = grace_s
        self._first = 0.0
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum, self._first = signum, time.monotonic()
        elif signum == signal.SIGINT and time.monotonic() - self._first > self.grace_s:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@dataclass
class Plan:
    """Where and how a recipe runs; printed by --dry-run and logged."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    attention: str = "dense"  # flex | dense
    fp8_head: bool = False
    fp8_mlp: bool = False
    fused_mlp: bool = False
    compile: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def describe(self, r: Recipe) -> str:
        accum = r.grad_accum_steps(self.world_size)
        dtype = "bfloat16 activations and embeddings" if self.device.type == "cuda" else "float32 throughout"
        lines = [
            f"device: {self.device.type} x {self.world_size} rank(s)"
            + (f" ({torch.cuda.get_device_name(self.device)})" if torch.cuda.is_available() and self.device.type == "cuda" else ""),
            f"batch: {r.batch_tokens:,} tokens/step = {self.world_size} rank(s) x {accum} accumulation step(s) x "
            f"{r.seq_len:,} tokens"
            + (f"; schedule over {len(r.batch_stages)} equal stages: {' -> '.join(f'{t:,}' for t in r.batch_stages)}"
               if r.batch_stages else "")
            + ("; each row starts at a document start" if r.align_rows_to_docs else ""),
            f"attention: {'FlexAttention block masks' if self.attention == 'flex' else 'dense boolean mask + SDPA'}"
            + (f"; in training, documents cut into pieces of {r.max_doc_tokens:,} tokens" if r.max_doc_tokens else "")
            + (f"; in training, documents cut into pieces of {' -> '.join(f'{n:,}' for n in r.max_doc_tokens_stages)}"
               f" tokens over {len(r.max_doc_tokens_stages)} equal stages" if r.max_doc_tokens_stages else ""),
            f"head matmul: {'FP8 (e4m3/e5m2) in training' if self.fp8_head else 'plain (no FP8)'}"
            + ("; fused with the soft-capped loss (Triton kernel)" if self.fp8_head and r.fused_head_loss else ""),
            f"MLP matmuls: {'FP8 (e4m3/e5m2, per-tensor dynamic scales) in training' if self.fp8_mlp else 'plain'}"
            + ("; c_fc fused with the ReLU^2, its backward with c_proj's (Triton kernels, fused_mlp) in training"
               if self.fused_mlp else ""),
            *([f"multi-token prediction: extra targets +2..+{len(r.mtp_weights) + 1} weighted "
               f"{', '.join(f'{w:g}' for w in r.mtp_weights)} at step 0, falling linearly to 0 at step "
               f"{math.ceil(r.mtp_end_frac * r.steps)} of {r.steps} (the train loss includes them until then)"]
              if r.mtp_weights else []),
            f"precision: {dtype}",
            f"torch.compile: {'on' if self.compile else 'off'}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def make_plan(r: Recipe, force_device: str | None = None, dry_run: bool = False) -> Plan:
    """Decide device, ranks, attention back-end, FP8 and compile, refusing impossible plans before any work.

    With `dry_run`, a GPU plan is described even where no GPU is visible instead of refusing.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    has_gpu = torch.cuda.is_available()
    want = force_device or r.device
    if want == "auto":
        want = "cuda" if has_gpu or r.gpu_only else "cpu"
    notes = []
    if want == "cuda" and not has_gpu:
        if not dry_run:
            why = "is GPU-only" if r.gpu_only else "asks for device cuda"
            raise TrainingError(f"recipe {r.name} {why} and no CUDA GPU is visible; "
                                f"use --device cpu to force a (very slow) CPU run")
        notes.append("no CUDA GPU is visible here: this is the plan on a CUDA GPU (training here would refuse)")
    device = torch.device("cuda", local_rank) if want == "cuda" else torch.device("cpu")
    plan = Plan(device, rank, world_size, local_rank, notes=notes)
    r.grad_accum_steps(world_size)  # these raise RecipeError if the batches do not divide
    r.val_batches(world_size)
    if device.type == "cuda":
        plan.attention = "flex"
        plan.compile = r.compile != "off"
        fp8_ok = fp8_supported(device) if has_gpu else True
        if r.fp8_head and not fp8_ok:
            plan.notes.append("this GPU has no FP8 tensor cores (compute capability < 8.9): the head runs in bf16")
        plan.fp8_head = r.fp8_head and fp8_ok
        if r.fp8_mlp and not fp8_ok:
            plan.notes.append("this GPU has no FP8 tensor cores (compute capability < 8.9): the MLP runs in bf16")
        plan.fp8_mlp = r.fp8_mlp and fp8_ok
        if r.fused_head_loss and not plan.fp8_head:
            plan.notes.append("fused_head_loss fuses the FP8 head: without it the loss runs unfused")
        if r.fused_mlp and linear_relu2.triton is None:
            plan.notes.append("fused_mlp needs Triton, which is not installed: the MLP runs unfused")
        plan.fused_mlp = r.fused_mlp and linear_relu2.triton is not None
    else:
        plan.compile = r.compile == "on"
        plan.notes.append("Newton-Schulz runs in float32 on CPU (bfloat16 matmuls are several times slower there)")
        if r.fp8_head:
            plan.notes.append("FP8 head needs a GPU: the head runs in float32 on CPU"
                              + (" and the loss unfused (fused_head_loss)" if r.fused_head_loss else ""))
        if r.fp8_mlp:
            plan.notes.append("FP8 MLP needs a GPU: the MLP runs in float32 on CPU")
        if r.fused_mlp:
            plan.notes.append("fused_mlp needs a GPU: the MLP runs unfused on CPU")
    return plan


def keep_large_allocations() -> None:
    """Keep big freed CPU buffers in the heap instead of returning them to the OS (glibc only).

    A CPU step allocates and frees several (T x vocab) float32 buffers; by default glibc maps each afresh and
    the kernel zero-fills every page again, which doubled the tiny recipe's step time on a 2-core machine.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve allocations up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except (OSError, AttributeError):
        pass


def build_model(r: Recipe, plan: Plan) -> GPT:
    torch.manual_seed(r.seed)
    model = GPT(r, attention=plan.attention)
    if not plan.fp8_head:
        model.lm_head.fp8_scales = None
    if not plan.fp8_mlp:
        for module in model.modules():
            if isinstance(module, CastedLinear):
                module.fp8_dynamic = False
    if not plan.fused_mlp:
        for module in model.modules():
            if isinstance(module, MLP):
                module.fused = False
    model = model.to(plan.device)
    if plan.device.type == "cuda":
        for table in model.embedding_tables():
            table.bfloat16()  # embeddings are kept in bf16 on the GPU, as in the record
    return model


def build_optimizers(model: GPT, r: Recipe, compile_ns: bool = False) -> tuple[torch.optim.Adam, Muon]:
    groups = model.param_groups()
    adam_groups = [
        dict(params=groups["head"], lr=r.lr_head),
        dict(params=groups["embed"], lr=r.lr_embed),
        dict(params=groups["scalar"], lr=r.lr_scalar),
    ]
    fused = next(model.parameters()).is_cuda
    adam = torch.optim.Adam(adam_groups, betas=tuple(r.adam_betas), eps=r.adam_eps, fused=fused)
    muon = Muon(groups["muon"], lr=r.muon_lr, momentum=r.muon_momentum, ns_steps=r.ns_steps,
                ns_coefficients=r.ns_coefficients, ns_dtype=torch.bfloat16 if fused else torch.float32, compile_ns=compile_ns,
                orthogonalizer=r.orthogonalizer, normuon_beta2=r.normuon_beta2, weight_decay=r.muon_weight_decay,
                ns_symmetric_kernel=r.ns_symmetric_kernel)
    for opt in (adam, muon):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    adam.pending_grads = {}  # adam_every > 1: parameter -> summed gradients since Adam's last step
    return adam, muon


def apply_schedules(step: int, r: Recipe, adam, muon) -> None:
    mult = lr_multiplier(step, r.steps, r.cooldown_frac, r.min_lr_frac)
    for opt in (adam, muon):
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * mult
    for g in muon.param_groups:
        g["momentum"] = muon_momentum(step, r.muon_momentum_start, r.muon_momentum, r.muon_momentum_warmup_steps)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean over ranks (gloo has no AVG: sum, then divide)."""
    if dist.get_backend() == "nccl":
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
    else:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())
    return t


def adam_step_due(step: int, r: Recipe) -> bool:
    """Adam steps at every `adam_every`-th step, and at the last step so that no gradient is left unused."""
    return (step + 1) % r.adam_every == 0 or step + 1 == r.steps


def optimizer_step(model, optimizers, step: int, r: Recipe, world_size: int) -> None:
    """Average the gradients over ranks and step the optimisers.

    With adam_every = k > 1, Adam steps on the mean of k steps' gradients. Between its steps their sum waits in
    `adam.pending_grads` (parameter -> tensor), out of `.grad`: each step's rank-averaged gradient is added to it
    after the all-reduce, so the sum is formed in the same order on any number of ranks (2 ranks then train
    bit for bit like 1 rank with 2 accumulation steps) and is the same on every rank (a checkpoint holds it).
    """
    adam, muon = optimizers
    if world_size > 1:
        for p in model.parameters():
            if p.grad is not None:
                all_reduce_mean(p.grad)
    apply_schedules(step, r, adam, muon)
    muon.step()
    due = adam_step_due(step, r)
    if r.adam_every > 1:
        pending = adam.pending_grads
        for group in adam.param_groups:
            for p in group["params"]:
                held = pending.pop(p, None)
                if held is not None:
                    p.grad = held if p.grad is None else held.add_(p.grad)
                if not due and p.grad is not None:
                    pending[p], p.grad = p.grad, None
        n = step % r.adam_every + 1  # steps since Adam's last step
        if due and n > 1:
            grads = [p.grad for g in adam.param_groups for p in g["params"] if p.grad is not None]
            torch._foreach_div_(grads, n)
    if due:
        adam.step()
    model.zero_grad(set_to_none=True)


def train_step(model, batches, optimizers, step: int, window, r: Recipe, world_size: int) -> torch.Tensor:
    """One optimiser step over this rank's micro-batches; returns the step's train loss averaged over all
    micro-batches of all ranks (a tensor; reading it is left to the caller). With multi-token prediction that
    loss includes the extra targets' weighted terms (until their weights reach 0)."""
    total = None
    # This step's multi-token-prediction weights and document cap, written into the model's buffers in place (no
    # recompile).
    (model._orig_mod if hasattr(model, "_orig_mod") else model).set_step(step)
    for inputs, targets in batches:
        loss = model(inputs, targets, window) / len(batches)
        loss.backward()
        total = loss.detach() if total is None else total + loss.detach()
    optimizer_step(model, optimizers, step, r, world_size)
    return all_reduce_mean(total) if world_size > 1 else total


def warmup_and_restore(model, optimizers, r: Recipe, plan: Plan, window, say=None) -> None:
    """Run `warmup_steps` steps on random tokens to compile and warm kernels, then restore every initial state.

    With a batch-size schedule the steps cycle through every stage's row length (at least two steps each), so
    that no compile happens on the clock. Nothing learned here survives, the data stream is untouched, and the
    global RNG is left as it was.
    """
    if r.warmup_steps == 0:
        return
    base = model._orig_mod if hasattr(model, "_orig_mod") else model
    initial = dict(model=copy.deepcopy(base.state_dict()), opts=[copy.deepcopy(o.state_dict()) for o in optimizers])
    gen = torch.Generator(device="cpu").manual_seed(12345 + plan.rank)
    rows = sorted({r.step_batch(s)[1] for s in range(r.steps)}) if r.batch_stages else [r.seq_len]
    n = max(r.warmup_steps, 2 * len(rows)) if len(rows) > 1 else r.warmup_steps
    t0 = time.perf_counter()
    for i in range(n):
        row = rows[i % len(rows)]
        tokens = torch.randint(0, r.vocab_size, (row + 1,), generator=gen).to(plan.device)
        batch = [(tokens[:-1].int(), tokens[1:].long())]
        train_step(model, batch, optimizers, 0, window, r, plan.world_size).item()  # .item(): time each step whole
        if say is not None and (i < 2 * len(rows) or i == n - 1):  # the compiling steps, and the last
            say(f"warm-up step {i + 1}/{n} ({row:,}-token rows): {time.perf_counter() - t0:.1f}s")
    base.load_state_dict(initial["model"])
    optimizers[0].pending_grads.clear()  # gradients Adam had not yet used (adam_every > 1)
    for opt, state in zip(optimizers, initial["opts"]):
        opt.load_state_dict(state)


def evaluate(model, r: Recipe, plan: Plan, window, val_files) -> float:
    model.eval()
    total = torch.zeros((), device=plan.device)
    n = 0
    with torch.no_grad():
        for inputs, targets in val_batches(val_files, r.val_tokens, r.val_seq_len, plan.rank, plan.world_size,
                                           plan.device):
            total += model(inputs, targets, window).float()
            n += 1
    total /= n
    if plan.world_size > 1:
        all_reduce_mean(total)
    model.train()
    return total.item()


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


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


@dataclass
class RunResult:
    log_path: str | None
    val_losses: list[tuple[int, float]]
    train_losses: list[float]
    training_time_ms: float
    peak_allocated_mib: int | None = None
    model: GPT | None = None


@dataclass
class _Start:
    """Where the loop starts: a fresh run, or a checkpoint's state."""

    step: int = 0
    train_ms: float = 0.0
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)


def run(r: Recipe, plan: Plan, log_dir: str = "logs", print_every: int | None = None, say=print,
        save_every: int | None = None, checkpoint_dir: str | None = None, resume=None) -> RunResult:
    """Train `r` under `plan`. Returns the losses and the log path; raises TrainingError on a dead run.

    save_every: checkpoint every N steps and at the end (0 or None: only on SIGINT / SIGTERM; None when resuming:
    the checkpoint's own setting). checkpoint_dir: where they go (None: the resumed checkpoint's folder, else
    `checkpoints`). resume: a checkpoint path or a loaded Checkpoint of this recipe; the run continues from its
    step, writing a new log that notes the resume. The returned losses cover the whole run.
    """
    from speedrun import checkpoint as ckpt_mod

    ckpt = None
    if resume is not None:
        ckpt = resume if isinstance(resume, ckpt_mod.Checkpoint) else ckpt_mod.load(resume)
        diff = ckpt_mod.recipe_differences(ckpt.recipe, r)
        if diff:
            raise ckpt_mod.CheckpointError(f"{ckpt.path}: the checkpoint's recipe differs in {', '.join(diff)}")
        if ckpt.complete:
            raise ckpt_mod.CheckpointError(f"{ckpt.path}: the run is complete (step {ckpt.step} of {r.steps}); "
                                           f"nothing to resume")
        if save_every is None:
            save_every = ckpt.save_every
    save_every = save_every or 0
    checkpoint_dir = checkpoint_dir or (ckpt.path.parent if ckpt is not None else "checkpoints")
    train_files, val_files = data_files(r.train_files, "train"), data_files(r.val_files, "val")
    check_val_size(val_files, r.val_tokens, r.val_seq_len, plan.world_size)
    file_list = [(f.name, shard_header(f)) for f in train_files]
    position = None
    if ckpt is not None:
        if ckpt.train_files and ckpt.train_files != file_list:
            raise ckpt_mod.CheckpointError(
                f"{ckpt.path}: the train files ({len(file_list)}: {file_list[0][0]}, ...) are not the ones the run "
                f"trained on ({len(ckpt.train_files)}: {ckpt.train_files[0][0]}, ...); the data order would change")
        position = StreamPosition(**ckpt.stream)
    stream = BatchStream(train_files, r.batch_tokens, r.seq_len, plan.rank, plan.world_size, loop=r.train_loop,
                         device=plan.device, position=position, align_to_docs=r.align_rows_to_docs)
    if plan.device.type == "cuda":
        torch.cuda.set_device(plan.device)
    else:
        keep_large_allocations()
    model = build_model(r, plan)
    if plan.world_size > 1:
        for p in model.parameters():
            dist.broadcast(p.detach(), 0)
    optimizers = build_optimizers(model, r, compile_ns=plan.compile)
    runner = torch.compile(model, dynamic=False) if plan.compile else model
    print_every = print_every or (1 if r.steps <= 200 else 10)
    log = RunLog(log_dir, r.name, r.to_dict(), enabled=plan.main, sections={"plan": plan.describe(r)})
    say = say if plan.main else (lambda *a, **k: None)
    say(f"speedrun: recipe {r.name}, {r.steps} steps of {r.batch_tokens:,} tokens; log {log.path}")
    for line in plan.describe(r).splitlines():
        say(f"  {line}")

    window = model.window

    keeper = _Keeper(r, plan, model, optimizers, stream, log, say, Path(checkpoint_dir), file_list, save_every)

    t_launch = time.perf_counter()
    try:
        warmup_and_restore(runner, optimizers, r, plan, window(0), say)
        start = _Start()
        if ckpt is not None:
            ckpt_mod.load_weights(model, ckpt)
            ckpt_mod.load_pending_grads(model, optimizers[0], ckpt)
            for opt, state in zip(optimizers, ckpt.optimizers):
                opt.load_state_dict(state)
            ckpt_mod.restore_rng(ckpt.rng)
            start = _Start(ckpt.step, ckpt.train_time_ms, list(ckpt.train_losses), list(ckpt.val_losses))
            log.note(f"resumed from {ckpt.path} at step {ckpt.step}"
                     + (f" (earlier steps: log {ckpt.log_path})" if ckpt.log_path else ""))
            say(f"resumed from {ckpt.path} at step {ckpt.step} of {r.steps} "
                f"({ckpt.train_time_ms / 1000:.1f}s of training so far)")
        if plan.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        say(f"warm-up: {r.warmup_steps} untimed steps and state restore in {time.perf_counter() - t_launch:.1f}s")
        with StopRequest() as stop:
            result = _loop(runner, model, optimizers, stream, r, plan, window, val_files, log, say, print_every,
                           start, save_every, keeper, stop)
    except torch.OutOfMemoryError as e:
        error = TrainingError(out_of_memory_advice(r, plan))
        log.finish(False, f"out of memory: {str(e).splitlines()[0] if str(e) else ''}")
        raise error from None
    except BaseException as e:
        if isinstance(e, Interrupted):
            reason = e.log_reason
        else:
            reason = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        log.finish(False, reason)
        raise
    log.finish(True)
    result.log_path = str(log.path) if plan.main else None
    result.model = model
    return result


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


class _Keeper:
    """Writes checkpoints (rank 0) and keeps the last known-good state in CPU memory, taken at each validation
    (off the clock), so that a run that goes non-finite can still leave a checkpoint of its last good step."""

    def __init__(self, r, plan, model, optimizers, stream, log, say, folder: Path, file_list, save_every: int):
        self.r, self.plan, self.model, self.optimizers, self.stream = r, plan, model, optimizers, stream
        self.log, self.say, self.folder, self.file_list, self.save_every = log, say, folder, file_list, save_every
        self.good: tuple[int, dict] | None = None  # (step, snapshot)
        self.good_path: Path | None = None  # a checkpoint file already holding `good`

    def _snapshot(self, step, train_ms, result) -> dict:
        from speedrun import checkpoint as ckpt_mod

        return ckpt_mod.payload(model=self.model, optimizers=self.optimizers, step=step,
                                stream_position=self.stream.position, recipe=self.r, log_path=str(self.log.path),
                                train_time_ms=train_ms, train_losses=result.train_losses,
                                val_losses=result.val_losses, train_files=self.file_list,
                                save_every=self.save_every, world_size=self.plan.world_size)

    def _path(self, step) -> Path:
        from speedrun import checkpoint as ckpt_mod

        return self.folder / ckpt_mod.checkpoint_name(self.r.name, step)

    def save(self, step, train_ms, result) -> Path:
        """Rank 0 writes a checkpoint of the current state; every rank returns its path."""
        from speedrun import checkpoint as ckpt_mod

        path = self._path(step)
        if self.plan.main:
            t = time.perf_counter()
            snap = self._snapshot(step, train_ms, result)
            ckpt_mod.write(path, snap)
            self.good, self.good_path = (step, snap), path
            self.log.note(f"checkpoint {path} at step {step}")
            self.say(f"checkpoint: {path} (step {step}, {time.perf_counter() - t:.1f}s, off the clock)")
        return path

    def remember(self, step, train_ms, result) -> None:
        if self.plan.main and (self.good is None or self.good[0] != step):
            self.good, self.good_path = (step, self._snapshot(step, train_ms, result)), None

    def fail(self, what: str):
        """Stop the run: write the last good state (if any) and raise TrainingError naming it."""
        from speedrun import checkpoint as ckpt_mod

        if self.good is None:
            where = "no good state was kept (none before the first validation)"
        else:
            step, snap = self.good
            path = self.good_path or self._path(step)
            if self.plan.main and self.good_path is None:
                ckpt_mod.write(path, snap)
            where = f"last good state (step {step}) in checkpoint {path}"
        if self.plan.world_size > 1:
            dist.barrier()  # no rank exits (and gets the others killed) before rank 0 has written
        raise TrainingError(f"{what}; stopping: {where} (lower the learning rates or check the data)")


class _StopVote:
    """Whether to stop after this step, the same answer on every rank: with several ranks each rank's flag is
    max-reduced every step and read one step later (no extra stall on a GPU); alone, the flag is read at once."""

    def __init__(self, stop: StopRequest, plan: Plan):
        self.stop, self.plan, self.pending = stop, plan, None

    def poll(self) -> int | None:
        """The signal number to stop for, or None."""
        if self.plan.world_size == 1:
            return self.stop.signum
        # torch.full fills on the device: a tensor built on the host would be a copy that waits for the GPU
        flag = torch.full((1,), float(self.stop.signum or 0), device=self.plan.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        previous, self.pending = self.pending, flag
        signum = int(previous.item()) if previous is not None else 0
        return signum or None


def _loop(runner, model, optimizers, stream, r, plan, window, val_files, log, say, print_every,
          start: _Start, save_every: int, keeper: "_Keeper", stop: StopRequest) -> RunResult:
    sync = torch.cuda.synchronize if plan.device.type == "cuda" else (lambda: None)
    losses = DeferredScalar(plan.device)
    result = RunResult(None, start.val_losses, start.train_losses, 0.0)
    train_ms = start.train_ms
    step_times: dict[int, float] = {}
    # tokens trained before each step, for tokens/s
    tokens_done = list(itertools.accumulate((r.step_batch(s)[0] for s in range(r.steps)), initial=0))
    vote = _StopVote(stop, plan)

    def report(item):
        if item is None:
            return
        step, loss = item
        if not math.isfinite(loss):
            keeper.fail(f"step {step}: train loss is {loss}")
        result.train_losses.append(loss)  # with multi-token prediction: includes its terms until their weights hit 0
        t = step_times.pop(step)
        tok_s = tokens_done[step] / (t / 1000) if t > 0 else 0.0
        log.step(step, r.steps, t, loss, tok_s)
        if step % print_every == 0 or step == r.steps:
            eta = (r.steps - step) * t / step / 1000
            say(f"step {step:>5}/{r.steps} | loss {loss:.4f} | {tok_s:,.0f} tok/s | "
                f"{t / step:.0f} ms/step | ETA {_fmt_time(eta)}")

    sync()
    t0 = time.perf_counter()
    for step in range(start.step, r.steps + 1):
        last = step == r.steps
        validate = last or (r.val_every > 0 and step % r.val_every == 0)
        if validate:
            sync()
            train_ms += 1000 * (time.perf_counter() - t0)
            report(losses.pop())
            val = evaluate(runner, r, plan, window(step), val_files)
            if not math.isfinite(val):
                keeper.fail(f"step {step}: val loss is {val}")
            result.val_losses.append((step, val))
            if step < r.steps:
                keeper.remember(step, train_ms, result)  # every loss so far is finite: a known-good state
            log.val(step, r.steps, val, train_ms)
            say(f"step {step:>5}/{r.steps} | val_loss {val:.4f} | train_time {train_ms / 1000:.1f}s")
            sync()
            t0 = time.perf_counter()
        if step == start.step:
            launch_s = time.time() - PROCESS_START
            log.write(f"launch_to_first_step_s:{launch_s:.1f}")
            say(f"launch to first timed step: {launch_s:.1f}s (from import; includes compile, warm-up"
                + (f", step-{step} val)" if validate else ")"))
        if last:
            break
        try:
            stream.set_batch(*r.step_batch(step))
            batches = stream.next_step()
        except StopIteration:
            raise TrainingError(
                f"the train files ran out at step {step} of {r.steps}; add shards or set train_loop = true"
            ) from None
        loss = train_step(runner, batches, optimizers, step, window(step), r, plan.world_size)
        step_times[step + 1] = train_ms + 1000 * (time.perf_counter() - t0)
        report(losses.push(step + 1, loss))
        done = step + 1
        signum = vote.poll() if done < r.steps else None
        if signum is not None or (save_every > 0 and done % save_every == 0 and done < r.steps):
            # Off the clock, and with this step's loss reported first so that the checkpoint holds it.
            sync()
            train_ms += 1000 * (time.perf_counter() - t0)
            report(losses.pop())
            if signum is not None:
                say(f"{signal.Signals(signum).name}: stopping after step {done}; writing a checkpoint")
            path = keeper.save(done, train_ms, result)
            if signum is not None:
                if plan.world_size > 1:
                    dist.barrier()  # no rank exits (and gets the others killed) before rank 0 has written
                raise Interrupted(done, path, signum)
            sync()
            t0 = time.perf_counter()
    result.training_time_ms = train_ms
    if plan.device.type == "cuda":
        alloc = torch.cuda.max_memory_allocated(plan.device) // 2**20
        reserved = torch.cuda.max_memory_reserved(plan.device) // 2**20
        result.peak_allocated_mib = alloc
        log.write(f"peak_memory allocated:{alloc} MiB reserved:{reserved} MiB")
        say(f"peak memory: {alloc:,} MiB allocated, {reserved:,} MiB reserved")
    log.write(f"training_time_ms:{train_ms:.0f}")
    if save_every > 0:
        keeper.save(r.steps, train_ms, result)
    return result


def init_distributed(plan: Plan) -> None:
    if plan.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if plan.device.type == "cuda" else "gloo"
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
        dist.init_process_group(backend=backend, device_id=plan.device if backend == "nccl" else None)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Plan", "make_plan", "build_model", "build_optimizers", "run", "TrainingError", "Interrupted", "RecipeError",
           "warmup_and_restore", "train_step", "evaluate", "init_distributed", "shutdown_distributed"]
