"""Which checkpoints a run writes and keeps: periodic and final ones (rank 0), the last known-good state held in
memory for a run that goes non-finite, and --keep-last's pruning."""

import time
from pathlib import Path

from speedrun import checkpoint as ckpt_mod
from speedrun.distributed import barrier_if_distributed
from speedrun.errors import TrainingError
from speedrun.files import remove_stale_temps, say_removed


class CheckpointKeeper:
    """Writes checkpoints (rank 0) and keeps the last known-good state in CPU memory, taken at each validation
    (off the clock), so that a run that goes non-finite can still leave a checkpoint of its last good step. It reads
    the state to save from its speedrun.train.Trainer (model, optimizers, stream, clock, result, log)."""

    def __init__(self, trainer, folder: Path, file_list):
        self.trainer, self.folder, self.file_list = trainer, folder, file_list
        self.good: tuple[int, dict] | None = None  # (step, snapshot)
        self.good_path: Path | None = None  # a checkpoint file already holding `good`
        self.last_full: Path | None = None  # the newest full checkpoint on disk (at first: the resumed one)
        self.keep_last, self.save_final = 0, False
        self.periodic: list[Path] = []  # the periodic checkpoints this run wrote, oldest first

    def clear_leftovers(self) -> None:
        """Rank 0, at the run's start: remove the partial checkpoint files that an earlier run killed mid-write
        (SIGKILL, out of memory) left in the folder, hidden, taking a checkpoint's disk space each."""
        if not self.trainer.plan.main:
            return
        for line in say_removed(remove_stale_temps(self.folder), "a checkpoint"):
            self.trainer.say(f"  note: {line}")
            self.trainer.log.note(line)

    def _snapshot(self, step, weights_only: bool = False) -> dict:
        t = self.trainer
        return ckpt_mod.payload(model=t.model, optimizers=() if weights_only else t.optimizers, step=step,
                                stream_position=t.stream.position, recipe=t.r, log_path=str(t.log.path),
                                train_time_ms=t.clock.ms, train_losses=t.result.train_losses,
                                val_losses=t.result.val_losses, train_files=self.file_list,
                                save_every=t.save_every, keep_last=self.keep_last, world_size=t.plan.world_size)

    def _path(self, step) -> Path:
        return self.folder / ckpt_mod.checkpoint_name(self.trainer.r.name, self.trainer.log.run_id, step)

    def save(self, step, weights_only: bool = False) -> Path | None:
        """Rank 0 writes a checkpoint of the current state; every rank returns its path."""
        path = self._path(step)
        if weights_only and not self.save_final:
            return None
        if self.trainer.plan.main:
            t0 = time.perf_counter()
            snap = self._snapshot(step, weights_only)
            ckpt_mod.write(path, snap)
            if not weights_only:
                self.good, self.good_path = (step, snap), path
                self.last_full = path
            removed = self._drop_old(path) if step < self.trainer.r.steps else []
            dropped = f"; removed {', '.join(p.name for p in removed)} (--keep-last {self.keep_last})" if removed else ""
            self.trainer.log.note(f"checkpoint {path} at step {step}" + (" (weights only)" if weights_only else "")
                                  + dropped)
            self.trainer.say(f"checkpoint: {path} (step {step}{', weights only' if weights_only else ''}, "
                             f"{time.perf_counter() - t0:.1f}s, off the clock){dropped}")
        return path

    def _drop_old(self, path: Path) -> list[Path]:
        """Keep the last `keep_last` periodic checkpoints of this run (0: all); the final one is never dropped.
        Returns the files removed."""
        self.periodic.append(path)
        removed = []
        while self.keep_last and len(self.periodic) > self.keep_last:
            old = self.periodic.pop(0)
            old.unlink(missing_ok=True)
            removed.append(old)
            if old == self.good_path:
                self.good_path = None
            if old == self.last_full:
                self.last_full = None
        return removed

    def remember(self, step) -> None:
        if self.trainer.plan.main and (self.good is None or self.good[0] != step):
            self.good, self.good_path = (step, self._snapshot(step)), None

    def fail(self, what: str, advice: str = "lower the learning rates or check the data"):
        """Stop the run: write the last good state (if any) and raise TrainingError naming it."""
        if self.good is None:
            where = "no good state was kept (none before the first validation)"
        else:
            step, snap = self.good
            path = self.good_path or self._path(step)
            if self.trainer.plan.main and self.good_path is None:
                ckpt_mod.write(path, snap)
            where = f"last good state (step {step}) in checkpoint {path}"
        barrier_if_distributed(self.trainer.plan.world_size)
        error = TrainingError(f"{what}; stopping: {where} ({advice})")
        error.every_rank = True  # the ranks stop on one all-reduced loss or count, at this barrier
        raise error
