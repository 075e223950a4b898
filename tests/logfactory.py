"""Run logs for the stats / plot / records tests: written by the real RunLog, or by hand where a test needs a
chosen commit, GPU line or a broken layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from speedrun.runlog import RunLog


def curve(final: float, steps: int = 100, every: int = 25, ms_per_step: float = 10.0) -> list[tuple[int, float, float]]:
    """(step, val loss, time ms) points from 10.8 at step 0 down to `final` at `steps`."""
    pts = []
    for s in list(range(0, steps, every)) + [steps]:
        frac = s / steps
        pts.append((s, round(final + (10.8 - final) * (1 - frac) ** 3, 4), s * ms_per_step))
    return pts


def _jitter(key: str) -> float:
    """Train losses of two runs differ, as two real runs' do (stats counts a loss-for-loss rerun once)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) % 997 * 1e-4


def runlog(folder: Path, final: float, steps: int = 100, name: str = "tiny", end: str | None = "complete",
           stop_at: int | None = None, ms_per_step: float = 10.0, rerun: bool = False) -> Path:
    """A log written through speedrun.runlog.RunLog. end: 'complete', 'failed: REASON' or None (crashed: no end
    line); stop_at: last step written (an unfinished run); rerun: every loss as any other rerun's with the same final
    (a deterministic rerun of one seed), else the train losses are the run's own."""
    log = RunLog(folder, name, {"name": name, "steps": steps})
    log.note(f"run {log.run_id}")  # two runs never share a log's text (a copy does: stats counts it once)
    jitter = 0.0 if rerun else _jitter(log.run_id)
    for s, loss, t in curve(final, steps, ms_per_step=ms_per_step):
        if stop_at is not None and s > stop_at:
            break
        if s:
            log.step(s, steps, t, loss + 0.1 + jitter, 1000.0)
        log.val(s, steps, loss, t)
    if end == "complete":
        log.write(f"training_time_ms:{steps * ms_per_step:.0f}")
        log.finish(True)
    elif end is not None:
        log.finish(False, end.removeprefix("failed: "))
    else:
        log._f.close()  # a crash: the file just stops
    return log.path


def hand_log(path: Path, final: float, steps: int = 100, name: str = "tiny", commit: str = "unknown",
             gpu: str | None = None, end: str | None = "complete", ms_per_step: float = 10.0,
             points: list[tuple[int, float, float]] | None = None, plan_after_steps: bool = False,
             recipe: dict | None = None, code: dict[str, str] | None = None, data: list[str] | None = None,
             command: str | None = None, notes: tuple[str, ...] = ()) -> Path:
    """The same format written as text. plan_after_steps: the section order of early logs (steps, then plan);
    recipe: more recipe fields (train_files, val_tokens, ...) beside name and steps; code: file name -> text, as
    the `code:` sections the trainer writes; data: the `data` section's lines; command: the environment's
    `command:` line; notes: `note: ...` lines before the steps."""
    # the host line tells two runs apart, as a real log's clock readings do (a copy shares its text: counted once)
    env = (["date: 2026-11-23 12:00:00 UTC", f"host: {path}"] + ([f"command: {command}"] if command else [])
           + [f"git_commit: {commit}"] + ([f"gpu: {gpu}"] if gpu else []))
    body = []
    for s, loss, t in points if points is not None else curve(final, steps, ms_per_step=ms_per_step):
        if s:
            body.append(f"step:{s}/{steps} train_time:{t:.0f}ms step_avg:{t / s:.2f}ms "
                        f"train_loss:{loss + _jitter(str(path)):.4f} tok/s:1")
        body.append(f"step:{s}/{steps} val_loss:{loss:.4f} train_time:{t:.0f}ms step_avg:{t / max(s, 1):.2f}ms")
    steps_part = ["=== steps ===", *(["=== plan ===", "device: cpu"] if plan_after_steps else []),
                  *(f"note: {note}" for note in notes), *body]
    lines = ["speedrun-log v1", "=== recipe ===", json.dumps({"name": name, "steps": steps, **(recipe or {})}),
             "=== environment ===", *env, *(["=== data ===", *data] if data else []),
             *(line for name, text in (code or {}).items() for line in (f"=== code: {name} ===", text)), *steps_part]
    if end is not None:
        lines.append(f"=== end: {end} ===")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def resumed_log(path: Path, final: float, at: int, first_part: Path, steps: int = 100, stop_at: int | None = None,
                **fields) -> Path:
    """A resume's log as `speedrun train --resume CKPT` writes it: the steps after `at` (to `stop_at`, where it is
    interrupted in turn), its command naming no recipe, its note the checkpoint and `first_part`'s log (from the
    folder the run ran in). fields: hand_log's (name, recipe, ...)."""
    ckpt = f"checkpoints/ckpt_{first_part.stem}_step{at:06d}.pt"
    end = "complete" if stop_at is None else f"failed: {_interrupted(path, stop_at)}"
    return hand_log(path, final, steps, end=end, points=[p for p in curve(final, steps) if at < p[0] <= (stop_at or steps)],
                    command=f"speedrun train --resume {ckpt}",
                    notes=(f"resumed from {ckpt} at step {at} (earlier steps: log logs/{first_part.name})",), **fields)


def interrupted_and_resumed(folder: Path, final: float, at: int = 50, steps: int = 100, stem: str = "run",
                            command: str | None = None, **fields) -> tuple[Path, Path]:
    """A run's two logs as Ctrl-C at step `at` and then `speedrun train --resume CKPT` leave them: the first part
    (the steps up to `at`; its command `command`) and the resume (resumed_log)."""
    first = folder / f"{stem}_a.txt"
    hand_log(first, final, steps, end=f"failed: {_interrupted(first, at)}",
             points=[p for p in curve(final, steps) if p[0] <= at], command=command, **fields)
    return first, resumed_log(folder / f"{stem}_b.txt", final, at, first, steps, **fields)


def _interrupted(path: Path, step: int) -> str:
    return f"interrupted at step {step}; checkpoint checkpoints/ckpt_{path.stem}_step{step:06d}.pt"
