"""SIGINT / SIGTERM: the step finishes, the ranks agree where to stop, a checkpoint is written, the CLI exits."""

import signal

import torch
import torch.distributed as dist

from speedrun.errors import SpeedrunError, StopRequest


class Interrupted(SpeedrunError):
    """SIGINT / SIGTERM stopped the run after a finished step and a checkpoint. The CLI exits with 128 + signal
    number (130 for Ctrl-C, 143 for SIGTERM), the shell convention for a process ended by a signal."""

    def __init__(self, step: int, path, signum: int):
        self.step, self.path, self.signum = step, str(path), signum
        self.exit_code = 128 + signum
        self.log_reason = f"interrupted at step {step}; checkpoint {path}"
        super().__init__(f"{signal.Signals(signum).name}: {self.log_reason} (continue with --resume {path})")


class StopVote:
    """Whether to stop after this step, the same answer on every rank: with several ranks each rank's flag is
    max-reduced every step and read one step later (no extra stall on a GPU); alone, the flag is read at once."""

    def __init__(self, stop: StopRequest, world_size: int, device: torch.device):
        self.stop, self.world_size, self.device, self.pending = stop, world_size, device, None

    def _ranks_max(self) -> torch.Tensor:
        """Every rank's flag (its signal number, or 0), max-reduced: the same on every rank once read."""
        # torch.full fills on the device: a tensor built on the host would be a copy that waits for the GPU
        flag = torch.full((1,), float(self.stop.signum or 0), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag

    def poll(self) -> int | None:
        """The signal number to stop for, or None."""
        if self.world_size == 1:
            return self.stop.signum
        previous, self.pending = self.pending, self._ranks_max()
        signum = int(previous.item()) if previous is not None else 0
        return signum or None

    def poll_now(self) -> int | None:
        """As poll, read at once on every rank (a sync): off the clock, after a checkpoint, so that a signal that came
        while it was written stops the run on it rather than one step and one more checkpoint later."""
        if self.world_size == 1:
            return self.stop.signum
        return int(self._ranks_max().item()) or None
