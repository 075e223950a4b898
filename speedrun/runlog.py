"""The run log: one text file per run, written as the run goes, and its parser (one format, one module).

Layout: a `speedrun-log v1` first line; sections `=== recipe ===` (JSON), `=== environment ===`,
`=== code: PATH ===` (every source file of the package that ran); then `=== steps ===` with record-style lines
  step:S/N train_time:Tms step_avg:Ams train_loss:L tok/s:R
  step:S/N val_loss:L train_time:Tms step_avg:Ams
then `peak_memory allocated:X MiB reserved:Y MiB`, `training_time_ms:T` and a last line
`=== end: complete ===` or `=== end: failed: REASON ===`. A log without an end line is an incomplete run.
A log kept compressed (`xz LOG.txt` -> `LOG.txt.xz`, as the experiments folders keep theirs) reads the same.
"""

from __future__ import annotations

import json
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from speedrun.errors import SpeedrunError

FORMAT_LINE = "speedrun-log v1"
PACKAGE_DIR = Path(__file__).parent


def environment_report() -> str:
    import torch  # here, not at module level: stats and plots read logs without loading torch

    lines = [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"host: {platform.node()}",
        f"platform: {platform.platform()}",
        f"python: {sys.version.split()[0]}",
        f"torch: {torch.__version__}",
        f"cuda: {torch.version.cuda or 'none'}",
        f"cuda_available: {torch.cuda.is_available()}",
        f"command: {' '.join(sys.argv)}",
        f"git_commit: {_git_commit()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"gpu: {torch.cuda.get_device_name()} x {torch.cuda.device_count()}")
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
            lines += ["nvidia-smi:", out.rstrip()]
        except (OSError, subprocess.TimeoutExpired) as e:
            lines.append(f"nvidia-smi: failed ({e})")
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=PACKAGE_DIR, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return (out.stdout.strip() + (" (modified)" if dirty else "")) if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def code_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*") if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts)


class RunLog:
    """Appends to logs/<time>_<recipe>_<id>.txt; flushes every line so a crash leaves a readable, incomplete log."""

    def __init__(self, log_dir: str | os.PathLike, recipe_name: str, recipe: dict, enabled: bool = True,
                 sections: dict[str, str] | None = None):
        self.enabled = enabled
        self.path = Path(log_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}_{recipe_name}_{uuid.uuid4().hex[:8]}.txt"
        self._f = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w")
        self.write(FORMAT_LINE)
        self.section("recipe", json.dumps(recipe, indent=1))
        self.section("environment", environment_report())
        for title, body in (sections or {}).items():
            self.section(title, body)
        for p in code_files():
            self.section(f"code: {p.relative_to(PACKAGE_DIR.parent)}", p.read_text())
        self.write("=== steps ===")

    def write(self, line: str) -> None:
        if self._f:
            self._f.write(line + "\n")
            self._f.flush()

    def section(self, title: str, body: str) -> None:
        self.write(f"=== {title} ===")
        self.write(body.rstrip("\n"))

    def step(self, step: int, steps: int, train_time_ms: float, train_loss: float | None, tok_s: float) -> None:
        loss = f" train_loss:{train_loss:.4f}" if train_loss is not None else ""
        self.write(f"step:{step}/{steps} train_time:{train_time_ms:.0f}ms step_avg:{train_time_ms / max(step, 1):.2f}ms"
                   f"{loss} tok/s:{tok_s:.0f}")

    def val(self, step: int, steps: int, val_loss: float, train_time_ms: float) -> None:
        self.write(f"step:{step}/{steps} val_loss:{val_loss:.4f} train_time:{train_time_ms:.0f}ms "
                   f"step_avg:{train_time_ms / max(step, 1):.2f}ms")

    def note(self, text: str) -> None:
        self.write(f"note: {text}")

    def finish(self, ok: bool, reason: str = "") -> None:
        self.write("=== end: complete ===" if ok else f"=== end: failed: {reason} ===")
        if self._f:
            self._f.close()
            self._f = None


# --- parsing ---------------------------------------------------------------------------------------------------
_STEP = re.compile(r"^step:(\d+)/(\d+) train_time:(\d+)ms step_avg:([\d.]+)ms(?: train_loss:(\S+))?")
_VAL = re.compile(r"^step:(\d+)/(\d+) val_loss:(\S+) train_time:(\d+)ms")
_MEM = re.compile(r"^peak_memory allocated:(\d+) MiB reserved:(\d+) MiB")
_END = re.compile(r"^=== end: (complete|failed: (.*)) ===$")


class LogError(SpeedrunError, ValueError):
    """Not a speedrun run log, or a malformed one. The message names the file."""


@dataclass
class ParsedLog:
    path: Path
    recipe: dict
    steps: int  # planned steps
    train_steps: list[tuple[int, float, float | None]] = field(default_factory=list)  # (step, time_ms, loss)
    val: list[tuple[int, float, float]] = field(default_factory=list)  # (step, val_loss, time_ms)
    peak_allocated_mib: int | None = None
    peak_reserved_mib: int | None = None
    status: str = "incomplete"  # complete | failed | incomplete
    failure: str = ""
    environment: str = ""

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def final_val_loss(self) -> float | None:
        return self.val[-1][1] if self.val else None

    @property
    def training_time_ms(self) -> float | None:
        return self.val[-1][2] if self.val else None


LOG_SUFFIXES = (".txt", ".txt.xz")  # a run log as written, and the same file xz-compressed


def read_log_text(path: str | os.PathLike, errors: str = "strict") -> str:
    """The text of a run log, decompressing a `.xz` one."""
    path = Path(path)
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="utf-8", errors=errors) as f:
            return f.read()
    return path.read_text(encoding="utf-8", errors=errors)


def parse_log(path: str | os.PathLike) -> ParsedLog:
    path = Path(path)
    try:
        text = read_log_text(path)
    except (OSError, UnicodeDecodeError, lzma.LZMAError, EOFError) as e:
        raise LogError(f"{path}: cannot read: {e}") from None
    lines = text.splitlines()
    if not lines or lines[0] != FORMAT_LINE:
        raise LogError(f"{path}: not a speedrun run log (first line is not '{FORMAT_LINE}')")
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines[1:]:
        if line.startswith("=== ") and line.endswith(" ===") and not line.startswith("=== end:"):
            current = line[4:-4]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    try:
        recipe = json.loads("\n".join(sections.get("recipe", [])))
    except json.JSONDecodeError:
        raise LogError(f"{path}: the recipe section is not valid JSON") from None
    if "steps" not in recipe:
        raise LogError(f"{path}: the recipe section has no 'steps'")
    log = ParsedLog(path, recipe, int(recipe["steps"]), environment="\n".join(sections.get("environment", [])))
    for line in sections.get("steps", []):  # only here: the code section may hold look-alike lines
        if m := _STEP.match(line):
            loss = float(m[5]) if m[5] is not None else None
            log.train_steps.append((int(m[1]), float(m[3]), loss))
        elif m := _VAL.match(line):
            log.val.append((int(m[1]), float(m[3]), float(m[4])))
        elif m := _MEM.match(line):
            log.peak_allocated_mib, log.peak_reserved_mib = int(m[1]), int(m[2])
        elif m := _END.match(line):
            log.status = "complete" if m[1] == "complete" else "failed"
            log.failure = m[2] or ""
    return log
