"""torch.distributed for a torchrun launch (NCCL on GPU, gloo on CPU); Muon does its own communication."""

import torch
import torch.distributed as dist

from speedrun.plan import Plan


def init_distributed(plan: Plan) -> None:
    if plan.world_size > 1 and not dist.is_initialized():
        bind_world_defaults_first()
        backend = "nccl" if plan.device.type == "cuda" else "gloo"
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
        dist.init_process_group(backend=backend, device_id=plan.device if backend == "nccl" else None)


def bind_world_defaults_first() -> None:
    """Import, before the process group exists, the torch modules whose functions take `group=group.WORLD` as a
    default argument, evaluated once at import (torch.distributed.nn, pulled in by torch._dynamo, which the first
    torch.optim optimiser imports). Imported after init_process_group, those defaults hold the process group for good:
    destroy_process_group then leaves gloo's worker threads running into the interpreter's teardown, where one that
    drops the last collective's tensor needs the GIL, is ended by Python (pthread_exit) inside a noexcept destructor,
    and std::terminate aborts the rank ("terminate called without an active exception", SIGABRT, in 2 of 40
    two-rank CPU runs; experiments part 62). Imported first, they hold None, and destroy_process_group joins gloo's threads."""
    import torch._dynamo  # noqa: F401
    import torch.distributed.nn  # noqa: F401


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
