"""The device plan: device, ranks, attention back-end, FP8 and compile, decided once before any work."""

import math
import os
from dataclasses import dataclass, field

import torch

from speedrun.errors import TrainingError
from speedrun.model.fp8 import fp8_supported
from speedrun.recipe import Recipe

# how the plan's summary names the MLP's FP8 scales (recipe field fp8_mlp_scaling)
MLP_SCALES = {"dynamic": "dynamic scales", "delayed": "delayed scales from the last step's maxima"}


@dataclass
class Plan:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    attention: str = "dense"  # flex | dense
    fp8_head: bool = False
    fp8_mlp: bool = False
    compile: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def describe(self, r: Recipe) -> str:
        accum = r.grad_accum_steps(self.world_size)
        dtype = "bfloat16 activations and embeddings" if self.device.type == "cuda" else "float32 throughout"
        gpu = torch.cuda.is_available() and self.device.type == "cuda"
        lines = [
            f"device: {self.device.type} x {self.world_size} rank(s)"
            + (f" ({torch.cuda.get_device_name(self.device)})" if gpu else ""),
            f"batch: {r.batch_tokens:,} tokens/step = {self.world_size} rank(s) x {accum} accumulation step(s) x "
            f"{r.seq_len:,} tokens",
            f"attention: {'FlexAttention block masks' if self.attention == 'flex' else 'dense boolean mask + SDPA'}",
            f"head matmul: {'FP8 (e4m3/e5m2) in training' if self.fp8_head else 'plain (no FP8)'}"
            + ("; fused with the soft-capped loss (Triton kernel)" if self.fp8_head and r.fused_head_loss else ""),
            "MLP matmuls: " + (f"FP8 (e4m3/e5m2, per-tensor {MLP_SCALES[r.fp8_mlp_scaling]}) in training"
                               if self.fp8_mlp else "plain"),
            *([f"multi-token prediction: extra targets +2..+{len(r.mtp_weights) + 1} weighted "
               f"{', '.join(f'{w:g}' for w in r.mtp_weights)} at step 0, falling linearly to 0 at step "
               f"{math.ceil(r.mtp_end_frac * r.steps)} of {r.steps} (the train loss includes them until then)"]
              if r.mtp_weights else []),
            f"precision: {dtype}",
            f"torch.compile: {'on' if self.compile else 'off'}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def make_plan(r: Recipe, force_device: str | None = None, dry_run: bool = False,
              world_size: int | None = None) -> Plan:
    """Decide device, ranks, attention back-end, FP8 and compile, refusing impossible plans before any work.

    With `dry_run`, a GPU plan is described even where no GPU is visible instead of refusing. `world_size` is the
    number of ranks to plan for, as rank 0 (a dry run's --nproc N, in one process); None: torchrun's WORLD_SIZE and
    RANK (1 rank without torchrun).
    """
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    else:
        rank = local_rank = 0
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
        for wanted, what in ((r.fp8_head, "head"), (r.fp8_mlp, "MLP")):
            if wanted and not fp8_ok:
                plan.notes.append(f"this GPU has no FP8 tensor cores (compute capability < 8.9): the {what} runs in bf16")
        plan.fp8_head, plan.fp8_mlp = r.fp8_head and fp8_ok, r.fp8_mlp and fp8_ok
        if r.fused_head_loss and not plan.fp8_head:
            plan.notes.append("fused_head_loss fuses the FP8 head: without it the loss runs unfused")
    else:
        plan.compile = r.compile == "on"
        plan.notes.append("Newton-Schulz runs in float32 on CPU (bfloat16 matmuls are several times slower there)")
        if r.fp8_head:
            plan.notes.append("FP8 head needs a GPU: the head runs in float32 on CPU"
                              + (" and the loss unfused (fused_head_loss)" if r.fused_head_loss else ""))
        if r.fp8_mlp:
            plan.notes.append("FP8 MLP needs a GPU: the MLP runs in float32 on CPU")
    return plan


def keep_large_allocations() -> None:
    """Keep big freed CPU buffers in the heap (glibc): by default each (T x vocab) float32 buffer of a CPU step is
    mapped afresh and zero-filled by the kernel, which doubled the tiny recipe's step time on a 2-core machine."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve allocations up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except (OSError, AttributeError):
        pass
