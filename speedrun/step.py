"""One optimiser step (micro-batches, gradient averaging, schedules), the untimed warm-up, and validation."""

import contextlib
import copy
import time

import torch

from speedrun.data.stream import val_batches
from speedrun.distributed import all_reduce_mean
from speedrun.optim.schedule import lr_multiplier, muon_momentum
from speedrun.plan import Plan
from speedrun.recipe import Recipe


def uncompiled(model):
    """The module itself behind a torch.compile wrapper (its state_dict and methods)."""
    return getattr(model, "_orig_mod", model)


def apply_schedules(step: int, r: Recipe, adam, muon) -> None:
    """Push `step`'s learning rates and Muon momentum into the optimisers (the schedules are pure functions)."""
    mult = lr_multiplier(step, r.steps, r.cooldown_frac, r.min_lr_frac)
    for opt in (adam, muon):
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * mult
    for g in muon.param_groups:
        g["momentum"] = muon_momentum(step, r.muon_momentum_start, r.muon_momentum, r.muon_momentum_warmup_steps)


def optimizer_step(model, optimizers, step: int, r: Recipe, world_size: int) -> None:
    """Average the gradients over ranks and step both optimisers at `step`'s schedule values."""
    adam, muon = optimizers
    if world_size > 1:
        for p in model.parameters():
            if p.grad is not None:
                all_reduce_mean(p.grad)
    apply_schedules(step, r, adam, muon)
    muon.step()
    adam.step()
    model.zero_grad(set_to_none=True)


class PhaseClock:
    """Seconds per phase of a step, the device synchronised at each boundary (so only for untimed steps: the first
    warm-up step, where torch.compile's time goes). With `phases` None it does nothing."""

    def __init__(self, phases: dict[str, float] | None):
        self.phases, self.t = phases, time.perf_counter() if phases is not None else 0.0  # nothing per timed step

    def lap(self, name: str, on: torch.Tensor) -> None:
        if self.phases is None:
            return
        if on.is_cuda:
            torch.cuda.synchronize(on.device)
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.t
        self.t = now


def train_step(model, batches, optimizers, step: int, window, r: Recipe, world_size: int,
               phases: dict[str, float] | None = None, graphs=None) -> torch.Tensor:
    """One optimiser step over this rank's micro-batches; returns the step's train loss averaged over all
    micro-batches of all ranks (a tensor; reading it is left to the caller). With multi-token prediction that
    loss includes the extra targets' weighted terms (until their weights reach 0). `phases`: a dict to add the
    seconds of the forward passes, backward passes and optimiser step to (see PhaseClock), or None. `graphs`: a
    `speedrun.graphs.GraphedSteps` that replays the forward and backward passes, or None (run them here)."""
    total = None
    clock = PhaseClock(phases)
    uncompiled(model).set_step(step)  # MTP weights in place (no recompile); the sampled head's rows
    if graphs is not None:
        total = graphs(batches, window)
        clock.lap("forward+backward (graph)", total)
    for inputs, targets in batches if graphs is None else []:
        loss = model(inputs, targets, window) / len(batches)
        clock.lap("forward", loss)
        loss.backward()
        clock.lap("backward", loss)
        total = loss.detach() if total is None else total + loss.detach()
    optimizer_step(model, optimizers, step, r, world_size)
    uncompiled(model).roll_fp8_amax(world_size)
    clock.lap("optimisers", total)
    return all_reduce_mean(total) if world_size > 1 else total


def warmup_and_restore(model, optimizers, r: Recipe, plan: Plan, window, say=None, graphs=None
                       ) -> dict[str, float]:
    """Run `warmup_steps` steps on random tokens to compile and warm kernels, then restore every initial state.
    Returns the first step's seconds by phase (forward, backward, optimisers; empty without warm-up steps).
    `graphs` (speedrun.graphs.GraphedSteps): the steps run on its stream, and then it captures a graph for each
    sampled-head row count of the run (the steps' first and last), before the restore.

    Nothing learned here survives, the data stream is untouched, and the global RNG is left as it was.
    """
    first: dict[str, float] = {}
    if r.warmup_steps == 0:
        return first
    base = uncompiled(model)
    # With graphs the initial state waits in host memory, so that the device holds during capture what it holds in
    # training and the captured peak is the training step's (speedrun.graphs: replays allocate nothing).
    keep = (lambda t: t.detach().to("cpu", copy=True)) if graphs is not None else None
    snapshot = (lambda sd: torch.utils._pytree.tree_map_only(torch.Tensor, keep, sd)) if keep else copy.deepcopy
    initial = dict(model=snapshot(base.state_dict()), opts=[snapshot(o.state_dict()) for o in optimizers])
    gen = torch.Generator(device="cpu").manual_seed(12345 + plan.rank)
    t0 = time.perf_counter()
    stream = graphs.stream if graphs is not None and graphs.stream is not None else None
    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        for i in range(r.warmup_steps):
            tokens = torch.randint(0, r.vocab_size, (r.seq_len + 1,), generator=gen).to(plan.device)
            batch = [(tokens[:-1].int(), tokens[1:].long())]
            # with a sampled head, odd warm-up steps run as the last training step does: when that one has the full
            # softmax, both head graphs compile here; when the head is sampled to the end, only the sampled one
            step = r.steps - 1 if r.sampled_head_rows and i % 2 else 0
            # .item(): time each step whole; the first (the compiling one) also by phase
            train_step(model, batch, optimizers, step, window, r, plan.world_size, first if i == 0 else None).item()
            if say is not None and (i < 2 or i == r.warmup_steps - 1):  # the compiling steps, and the last
                detail = f" ({format_phases(first)})" if i == 0 else ""
                say(f"warm-up step {i + 1}/{r.warmup_steps}: {time.perf_counter() - t0:.1f}s{detail}")
    if stream is not None:
        torch.cuda.current_stream().wait_stream(stream)
    if graphs is not None:
        t1 = time.perf_counter()
        for step in (0, r.steps - 1):  # the head's row counts of the run: a graph for each
            base.set_step(step)
            if base.head_rows not in graphs.captured:
                graphs.capture(batch * r.grad_accum_steps(plan.world_size), window)
        if say is not None:
            say(f"CUDA graphs: {len(graphs.captured)} captured in {time.perf_counter() - t1:.1f}s")
    base.load_state_dict(initial["model"])
    base.head_left_out.zero_()  # random tokens have more distinct targets than a sampled head's rows: not a run's
    for opt, state in zip(optimizers, initial["opts"]):
        opt.load_state_dict(state)
    return first


def format_phases(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {s:.1f}s" for name, s in phases.items())


def evaluate(model, r: Recipe, plan: Plan, window, val_files) -> float:
    """Mean val loss over the recipe's `val_tokens` positions (rows of val_seq_len, shared out over ranks)."""
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
