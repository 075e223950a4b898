"""Run by tests/test_distributed.py under torchrun (2 ranks): the process group's set-up and teardown as a run has
them (init_distributed, then an optimiser, whose first construction imports torch._dynamo, a collective, then
shutdown_distributed), then prints the threads left in this process. Gloo's worker threads ("pt_gloo_runloop")
still alive there would run into the interpreter's teardown, where one could abort the rank (experiments part 62)."""

import os

import torch
import torch.distributed as dist

from speedrun.distributed import init_distributed, shutdown_distributed
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe


def main():
    plan = make_plan(load_recipe("tiny", {"batch_tokens": 2048, "val_tokens": 4096}), force_device="cpu")
    init_distributed(plan)
    weight = torch.nn.Parameter(torch.ones(4))
    torch.optim.Adam([weight])  # as build_optimizers does, after init_distributed
    total = torch.ones(())
    dist.all_reduce(total)
    shutdown_distributed()
    threads = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    # one write of one line: the two ranks share the pipe, and print()'s separate newline let their lines interleave
    os.write(1, f"rank {plan.rank} threads after shutdown: {' '.join(threads)}\n".encode())


if __name__ == "__main__":
    main()
