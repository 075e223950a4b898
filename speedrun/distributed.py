"""torch.distributed for a torchrun launch (NCCL on GPU, gloo on CPU); Muon does its own communication."""

import torch
import torch.distributed as dist

from speedrun.plan import Plan


def init_distributed(plan: Plan) -> None:
    if plan.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if plan.device.type == "cuda" else "gloo"
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
        dist.init_process_group(backend=backend, device_id=plan.device if backend == "nccl" else None)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean over ranks (gloo has no AVG: sum, then divide)."""
    if dist.get_backend() == "nccl":
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
    else:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())
    return t


def barrier_if_distributed(world_size: int) -> None:
    """Hold every rank until all arrive, so that none exits (and gets the others killed) before rank 0 has written."""
    if world_size > 1:
        dist.barrier()
