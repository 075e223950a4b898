"""The run log: one text file per run, written as the run goes, and its parser.

Layout: a `speedrun-log v1` first line; sections `=== recipe ===` (JSON), `=== environment ===`, `=== plan ===`,
`=== data ===` (each train and val file: name, tokens, fingerprint), `=== code: PATH ===` (every source file of the
package that ran); then `=== steps ===` with record-style lines
  step:S/N train_time:Tms step_avg:Ams train_loss:L tok/s:R
  step:S/N val_loss:L train_time:Tms step_avg:Ams
then `peak_memory allocated:X MiB reserved:Y MiB`, `training_time_ms:T` and a last line
`=== end: complete ===` or `=== end: failed: REASON ===`. A log without an end line is an incomplete run.
"""

import contextlib
import hashlib
import json
import lzma
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from speedrun.errors import SpeedrunError
from speedrun.host import cpu_description

FORMAT_LINE = "speedrun-log v1"
LOG_SUFFIXES = (".txt", ".txt.xz")  # a run log as written, and the same file xz-compressed (as experiments/ keeps)
PACKAGE_DIR = Path(__file__).parent


def logged_command(argv: list[str]) -> str:
    """The command as a user would type it again: `speedrun ...` for the installed script or `python -m speedrun`
    (whose argv[0] is a path of this machine), each argument quoted for a shell where it needs it (a glob, a space).
    Relative paths in it are from the log's `cwd:`."""
    path = Path(argv[0])
    prog = "speedrun" if path.name == "speedrun" or path.parts[-2:] == ("speedrun", "__main__.py") else argv[0]
    return shlex.join([prog, *argv[1:]])


def environment_report() -> str:
    import torch  # here, not at module level: stats and plots read logs without loading torch

    lines = [f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"host: {platform.node()}",
             f"platform: {platform.platform()}", f"cpu: {cpu_description()}",
             # a CPU run's losses depend on the thread count (the order of its sums), so the log keeps it
             f"cpu_threads: {torch.get_num_threads()} a rank", f"python: {sys.version.split()[0]}",
             f"torch: {torch.__version__}",
             f"cuda: {torch.version.cuda or 'none'}", f"cuda_available: {torch.cuda.is_available()}",
             f"command: {os.environ.get('SPEEDRUN_COMMAND') or logged_command(sys.argv)}", f"cwd: {os.getcwd()}", f"git_commit: {_git_commit()}"]
    if torch.cuda.is_available():
        lines.append(f"gpu: {torch.cuda.get_device_name()} x {torch.cuda.device_count()}")
    if smi := shutil.which("nvidia-smi"):
        try:
            lines += ["nvidia-smi:", subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout.rstrip()]
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


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


class RunLog:
    """Appends to logs/<time>_<recipe>_<id>.txt; flushes every line so a crash leaves a readable, incomplete log."""

    def __init__(self, log_dir: str | os.PathLike, recipe_name: str, recipe: dict, enabled: bool = True,
                 sections: dict[str, str] | None = None, run_id: str | None = None):
        self.enabled = enabled
        self.run_id = run_id or new_run_id()  # also names the run's checkpoints
        self.path = Path(log_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}_{recipe_name}_{self.run_id}.txt"
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
            try:
                self._f.write(line + "\n")
                self._f.flush()
            except OSError as e:  # a full disk: said of the log, and nothing more is written to it
                self._f, f = None, self._f
                with contextlib.suppress(OSError):
                    f.close()
                raise OSError(e.errno, e.strerror or str(e), str(self.path)) from None

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


# Two formats are read: ours (first line FORMAT_LINE, layout above) and the upstream NanoGPT speedrun's record logs
# (modded-nanogpt records/*/*.txt): the training program's source, a line of UPSTREAM_SEPARATOR, an environment dump
# (python / torch versions, nvidia-smi; newer versions close it with a second separator line), then
#   step:S/N val_loss:L train_time:Tms step_avg:Ams            (validations)
#   step:S/N [train_loss:L ]train_time:Tms step_avg:Ams         (training steps; older versions: loss before time)
# and maybe `peak memory allocated: X MiB reserved: Y MiB` / `peak memory consumption: X MiB`. Such a log has no end
# line: it is complete when its last validation is at the final planned step N, else incomplete.
_STEP = re.compile(r"^step:(\d+)/(\d+) train_time:(\d+)ms step_avg:([\d.]+)ms(?: train_loss:(\S+))?")
_VAL = re.compile(r"^step:(\d+)/(\d+) val_loss:(\S+) train_time:(\d+)ms")
_MEM = re.compile(r"^peak_memory allocated:(\d+) MiB reserved:(\d+) MiB")
_END = re.compile(r"^=== end: (complete|failed: (.*)) ===$")
_RESUMED = re.compile(r"^note: resumed from (.+) at step (\d+)(?: \(earlier steps: log (.+)\))?$")
UPSTREAM_SEPARATOR = "=" * 100
_UP_STEP = re.compile(r"^step:(\d+)/(\d+) (.*)$")
_UP_FIELD = re.compile(r"(\w+):(\S+)")
_UP_TIME = re.compile(r"^([\d.]+)(ms|s)$")
_UP_MEM = re.compile(r"^peak memory (?:allocated|consumption): (\d+) MiB(?: reserved: (\d+) MiB)?")
_GENERIC_FOLDER = re.compile(r"(?i)^(old(er)?[_-]?)?logs?$")  # upstream keeps superseded runs in records/X/old_logs/


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
    source: str = "speedrun"  # speedrun (our format) | upstream (a modded-nanogpt record log)
    code_hash: str = ""  # sha-256 (12 hex) of the logged package source; "" where the log holds none
    data_hash: str = ""  # sha-256 (12 hex) of the `data` section (the files trained and validated on); "" if none
    text_hash: str = ""  # sha-256 (16 hex) of the whole text: a copy of a log (renamed, or .xz) is the same run
    resumed_at: int | None = None  # a resumed run's log: the checkpoint's step; its earlier steps are in another log
    first_part: str | None = None  # that log's path as the resume's note names it (where found; older: as recorded)
    damaged_line: int | None = None  # a last line spoilt (a power loss's NULs): the log is read up to this line

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def final_val_loss(self) -> float | None:
        return self.val[-1][1] if self.complete and self.val and self.val[-1][0] == self.steps else None

    @property
    def last_val(self) -> tuple[int, float, float] | None:
        """The last validation after step 0: step 0's loss is the untrained model's, never a result."""
        return self.val[-1] if self.val and self.val[-1][0] > 0 else None

    @property
    def training_time_ms(self) -> float | None:
        return self.val[-1][2] if self.val else None


def read_log_text(path: str | os.PathLike, errors: str = "strict") -> str:
    with (lzma.open if Path(path).suffix == ".xz" else open)(path, "rt", encoding="utf-8", errors=errors) as f:
        return f.read()


def parse_log(path: str | os.PathLike) -> ParsedLog:
    """Our run log or an upstream NanoGPT speedrun record log (told apart by the first line). A run whose last val
    loss is not finite (a diverged upstream run, an edited log) is a failed run: never a result to average."""
    log = _parse(Path(path))
    if log.complete and log.val and not math.isfinite(log.val[-1][1]):
        log.status, log.failure = "failed", f"val loss {log.val[-1][1]} at step {log.val[-1][0]}"
    return log


def _parse(path: Path) -> ParsedLog:
    spoilt = None  # the number of a last line that is not UTF-8 (a power loss's garbage): read up to it
    try:
        lines = read_log_text(path).splitlines()
    except UnicodeDecodeError as e:
        lines, spoilt = _cut_at_garbage(path, e)
    except (OSError, lzma.LZMAError, EOFError) as e:
        raise LogError(f"{path}: cannot read: {e}") from None
    if lines[:1] != [FORMAT_LINE]:
        if UPSTREAM_SEPARATOR not in lines:
            raise LogError(f"{path}: not a speedrun run log (first line is not '{FORMAT_LINE}') nor an upstream "
                           f"NanoGPT speedrun log (no line of 100 '=' followed by step lines)")
        log = _parse_upstream(path, lines)
    else:
        log = _parse_ours(path, lines)
        if spoilt is not None and log.status == "incomplete" and log.damaged_line is None:
            log.damaged_line = spoilt
    log.text_hash = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return log


def _cut_at_garbage(path: Path, error: UnicodeDecodeError) -> tuple[list[str], int]:
    """(the lines before the first that is not UTF-8, its number) where nothing after it reads as a log line: bytes
    a crash or a power loss left at the end of our log. Anywhere else (or in another format) LogError, as before."""
    lines = read_log_text(path, errors="replace").splitlines()
    bad = next(i for i, line in enumerate(lines) if "\ufffd" in line)
    later = any(pattern.match(line) for line in lines[bad + 1:] for pattern in (_STEP, _VAL, _MEM, _END))
    if lines[:1] != [FORMAT_LINE] or bad == 0 or later:
        raise LogError(f"{path}: cannot read: {error}")
    return lines[:bad], bad + 1


def _parse_ours(path: Path, lines: list[str]) -> ParsedLog:
    sections: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}  # a section's first body line's number in the file: what a damaged line is named by
    current: list[str] = []  # lines before the first section are dropped
    for number, line in enumerate(lines[1:], 2):
        if line.startswith("=== ") and line.endswith(" ===") and not line.startswith("=== end:"):
            current = sections[line[4:-4]] = []
            first_line[line[4:-4]] = number + 1
        else:
            current.append(line)
    try:
        recipe = json.loads("\n".join(sections.get("recipe", [])))
    except json.JSONDecodeError:
        raise LogError(f"{path}: the recipe section is not valid JSON") from None
    if not isinstance(recipe, dict) or "steps" not in recipe:
        raise LogError(f"{path}: the recipe section has no 'steps'")
    if type(recipe["steps"]) is not int or recipe["steps"] < 1:
        raise LogError(f"{path}: the recipe section's steps ({json.dumps(recipe['steps'])}) is not a whole number >= 1")
    log = ParsedLog(path, recipe, recipe["steps"], environment="\n".join(sections.get("environment", [])),
                    code_hash=code_hash({t: body for t, body in sections.items() if t.startswith("code: ")}),
                    data_hash=code_hash({"data": sections["data"]}) if sections.get("data") else "")
    steps = sections.get("steps", [])
    for i, line in enumerate(steps):  # only here: the code section may hold look-alike lines
        try:
            if m := _STEP.match(line):
                log.train_steps.append((int(m[1]), float(m[3]), None if m[5] is None else _loss(m[5], "train_loss")))
            elif m := _VAL.match(line):
                log.val.append((int(m[1]), _loss(m[3], "val_loss"), float(m[4])))
            elif m := _MEM.match(line):
                log.peak_allocated_mib, log.peak_reserved_mib = int(m[1]), int(m[2])
            elif m := _END.match(line):
                log.status = "complete" if m[1] == "complete" else "failed"
                log.failure = m[2] or ""
            elif (m := _RESUMED.match(line)) and log.resumed_at is None:
                log.resumed_at, log.first_part = int(m[2]), m[3]
        except ValueError as e:  # a loss that is no number (_loss)
            number = first_line["steps"] + i
            # the last line of an unfinished log, spoilt as it was written (a power loss leaves NULs): a crashed
            # run, read up to it; anywhere else the log was damaged or edited after the run, so nothing in it is sure
            if log.status == "incomplete" and not any(rest.strip("\0 \t") for rest in steps[i + 1:]):
                log.damaged_line = number
                break
            raise LogError(f"{path}: line {number}: {e}") from None
    return log


def _loss(text: str, name: str) -> float:
    """A logged loss; ValueError for a word or a value below 0 (a cross-entropy never is). NaN and inf are read: a
    diverged run's, which parse_log calls failed."""
    try:
        value = float(text)
    except ValueError:
        shown = repr(text[:12]) + ("..." if len(text) > 12 else "")  # NULs by the thousand: a few are enough
        raise ValueError(f"{name} {shown} is not a number") from None
    if value < 0:
        raise ValueError(f"{name} {text} is below 0, which no cross-entropy is (an edited log?)")
    return value


def code_hash(code_sections: dict[str, list[str]]) -> str:
    """What ran, whatever git said: the log's `code:` sections (file name and lines) hashed. A run from a modified
    checkout, or from a copy whose .git is stale (as on a machine that receives only the working tree), logs the same
    commit for different code; this tells such runs apart. "" without code sections."""
    if not code_sections:
        return ""
    digest = hashlib.sha256()
    for title in sorted(code_sections):
        digest.update(("\0".join([title, *code_sections[title]]) + "\0\0").encode())
    return digest.hexdigest()[:12]


def _parse_upstream(path: Path, lines: list[str]) -> ParsedLog:
    body = lines[lines.index(UPSTREAM_SEPARATOR) + 1:]  # before it: the program's source, which may hold look-alikes
    environment, train_steps, val = [], [], []
    steps_planned, peak = None, (None, None)
    for line in body:
        if m := _UP_STEP.match(line):
            fields = dict(_UP_FIELD.findall(m[3]))
            loss = fields.get("val_loss", fields.get("train_loss"))
            time_match = _UP_TIME.match(fields.get("train_time", ""))
            try:
                ms = float(time_match[1]) * (1000 if time_match[2] == "s" else 1) if time_match else None
                loss = None if loss is None else _loss(loss, "loss")
            except ValueError:
                ms = None
            if ms is None:  # a damaged line (a half-written last one, or a loss below 0): skipped
                continue
            steps_planned = int(m[2])
            if "val_loss" in fields:
                val.append((int(m[1]), loss, ms))
            else:
                train_steps.append((int(m[1]), ms, loss))
        elif m := _UP_MEM.match(line):
            peak = (int(m[1]), int(m[2]) if m[2] else None)
        elif steps_planned is None and line != UPSTREAM_SEPARATOR:
            environment.append(line)  # everything between the separator and the first step line
    if steps_planned is None:
        raise LogError(f"{path}: has the upstream NanoGPT speedrun log's line of 100 '=' but no step lines after it")
    # the recipe is 'upstream-<folder>': upstream names its logs by uuid and keeps one record (one program) per folder
    folder = Path(os.path.abspath(path)).parent  # abspath, not resolve: a symlinked log keeps the folder it is in
    name = folder.name
    if _GENERIC_FOLDER.match(name) and folder.parent.name:
        name = f"{folder.parent.name}/{name}"
    recipe = {"name": f"upstream-{name or path.stem}", "steps": steps_planned}
    status = "complete" if val and val[-1][0] == steps_planned else "incomplete"  # no end line upstream
    return ParsedLog(path, recipe, steps_planned, train_steps, val, *peak, status,
                     environment="\n".join(environment).strip("\n"), source="upstream")


def env_value(environment: str, key: str) -> str | None:
    """The value of `key:` in a log's environment section (None when the log has no such line)."""
    m = re.search(rf"^{re.escape(key)}: *(.*)$", environment, re.M)
    return m[1].strip() if m else None
