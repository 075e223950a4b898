"""`records/`: runs worth keeping, one folder per record (the convention: see INTRO), and the table of them in
records/README.md, regenerated from the logs themselves so that it can never disagree with the evidence.
"""

import errno
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from speedrun.errors import SpeedrunError
from speedrun.files import write_atomic
from speedrun.runlog import LogError, env_value
from speedrun.stats import (
    DEFAULT_TARGET,
    P_BAR,
    by_group,
    compute_stats,
    find_logs,
    format_p,
    load_runs,
    stats_report,
    summarize,
)

RECORD_DIR = re.compile(r"^(\d{4}-\d{2}-\d{2})_([A-Za-z0-9][A-Za-z0-9._-]*)$")
TARGET_LINE = re.compile(r"^- target: *(.*?) *$", re.M)  # in a record's README; absent -> DEFAULT_TARGET

INTRO = """# Records

Runs worth keeping. Each record is a folder `records/<YYYY-MM-DD>_<short-name>/` holding the run logs
(`*.txt`, unedited, exactly as `speedrun train` wrote them) and a `README.md` with the command, the device, the
val loss target of the data it ran on (`- target: X`; 3.28 for FineWeb) and the `speedrun stats` report.
A record is a claim that the mean final val loss is below the target: the bar is a one-sided t-test with
p < 0.01 over n >= 2 complete runs of one recipe, settings and code. Failed, crashed (incomplete) and
malformed logs are never counted; where a folder's runs ran other code or settings, the row judges its largest
group of alike runs and counts the others apart ("+k of other code or settings"), never the pool.

The table between the two `speedrun records` marks is generated: `speedrun records` rebuilds it from the logs in
the record folders (do not edit it by hand; text outside the marks, this one's included, is kept). Add a record
with `speedrun records --new NAME LOG...` (or `speedrun.records.new_record(...)`), or by making the folder yourself
and running `speedrun records`.
"""
TABLE_START = "<!-- speedrun records: the table below is generated; text outside these marks is kept -->"
TABLE_END = "<!-- speedrun records: end of the generated table -->"


def new_record(records_dir: str | os.PathLike, name: str, logs: list[str], command: str, device: str,
               target: float = DEFAULT_TARGET, notes: str = "", date: str | None = None) -> Path:
    """Make records/<date>_<name>/ with copies of `logs` (files or folders), its README and its val_loss.png; rebuild
    the table.
    Refuses an existing record folder, files that are not run logs (a record holds evidence only) and complete runs of
    more than one recipe, settings and code (a record is a claim about one)."""
    date = date or time.strftime("%Y-%m-%d")
    folder = Path(records_dir) / f"{date}_{name}"
    if not RECORD_DIR.fullmatch(f"{date}_{name}"):  # the name as given: '../x' is no name, whatever its folder's
        raise SpeedrunError(f"record {date}_{name!s}: want YYYY-MM-DD_NAME, NAME of letters, digits, '.', '_' and '-'")
    _check_root(Path(records_dir))
    if folder.exists():
        raise SpeedrunError(f"{folder}: the record already exists")
    sources = find_logs(logs)
    summary = summarize([str(s) for s in sources], target)
    for run in summary.runs:
        if run.status == "malformed":
            raise LogError(f"{run.path}: {run.reason}")
        if run.copy_of:  # a copy of a log, or a deterministic rerun: not another sample of the recipe
            raise SpeedrunError(f"{run.path}: {run.reason.removesuffix('; not counted again')}; a record holds "
                                f"each run once")
    if not summary.groups:
        raise SpeedrunError(f"no complete run among the {len(sources)} log(s): a record holds finished runs "
                            "(`speedrun stats` on them says why each is not counted)")
    if len(summary.groups) > 1:
        raise SpeedrunError(f"the logs' complete runs are {len(summary.groups)} groups (recipe values or code "
                            "differ); a record holds runs of one recipe, settings and code (`speedrun stats` on "
                            "them shows the groups)")
    if len({s.name for s in sources}) != len(sources):
        raise SpeedrunError("two logs have the same file name; a record keeps them side by side")
    # no --device: the machine the logs name, as the table shows it (the record's README never leaves it empty)
    device = device or ", ".join(sorted({run.device for run in summary.counted}))
    # no --command: the ones the logs name (`speedrun train ...`), which differ by seed where runs repeat a recipe
    logged = sorted({c for run in summary.counted if (c := env_value(run.log.environment, "command"))})
    # filled under a hidden name, then renamed: a failed copy leaves no half-made record for the table to list
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        for src in sources:
            shutil.copyfile(src, tmp / src.name)  # contents only: the originals may be read-only
        report, _ = stats_report([str(tmp)], target=target)
        lines = [f"# {name}", "", f"- date: {date}",
                 f"- command: `{command}`" if command else
                 f"- command{'s' if len(logged) > 1 else ''} (from the logs): {'; '.join(f'`{c}`' for c in logged)}"
                 if logged else
                 "- command: (not given)",
                 f"- device: {device}",
                 f"- target: {target:g}", f"- logs: {', '.join(f'`{s.name}`' for s in sources)}", ""]
        if notes:
            lines += [notes.strip(), ""]
        lines += ["## Stats", "", f"`speedrun stats {Path(records_dir) / folder.name} --target {target:g}`:", "", "```text",
                  report, "```", ""]
        (tmp / "README.md").write_text("\n".join(lines), encoding="utf-8")
        from speedrun.plot import plot_logs  # matplotlib: only when a record is made
        # as every record folder has; from the user's logs (the copies' order), so a skipped log's note names the
        # path they gave, not the hidden folder
        plot_logs([str(s) for s in sorted(sources, key=lambda s: s.name)], str(tmp / "val_loss.png"), target)
        os.rename(tmp, folder)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _as_written(e, tmp, folder) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rebuild_records_table(records_dir)
    return folder


def _as_written(e: OSError, tmp: Path, folder: Path) -> OSError:
    """`e` naming the file being written as the record names it (the hidden temp folder is gone with the rollback).
    A full disk is the destination's, though shutil's copy names the source first (and the destination second)."""
    full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    name = e.filename2 if full and e.filename2 is not None else e.filename
    if name is None or e.errno is None:  # nothing to rename by
        return e
    path = Path(os.fsdecode(name))
    if path.is_relative_to(tmp):
        path = folder / path.relative_to(tmp)
    return OSError(e.errno, e.strerror, str(path))


def _check_root(root: Path, must_exist: bool = False) -> None:
    """One line for a records folder that is a file, or lies in one (not the OSError of a write into it), and, where
    it must exist, for one that does not."""
    where = "<dir>/<YYYY-MM-DD>_<short-name>/"
    above = next(p for p in (root, *root.parents) if p.exists())  # "." or "/" at the latest
    if not above.is_dir():
        raise SpeedrunError(f"{root}: {'' if above == root else f'{above} '}is a file, not a folder (records live in "
                            f"{where})")
    if must_exist and not root.is_dir():
        raise SpeedrunError(f"{root}: no such folder (records live in {where})")


def _target(text: str, readme: Path) -> float:
    """A hand-written README's target line: a number, maybe ending a sentence ('3.41.'); anything else is named."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\.?", text)
    if not m:
        raise SpeedrunError(f"{readme}: '- target: {text}' is not a number (write e.g. '- target: 3.28')")
    return float(m[1])


def _row(folder: Path) -> list[str]:
    date, short_name = folder.name.split("_", 1)
    readme = folder / "README.md"
    m = TARGET_LINE.search(readme.read_text(encoding="utf-8")) if readme.is_file() else None
    target = _target(m[1], readme) if m else DEFAULT_TARGET
    try:
        # a resumed run's first part is part of that run: not one more run that is not counted
        runs = [r for r in load_runs([str(folder)]) if r.continued_in is None]
    except SpeedrunError:  # a record folder without logs: listed, with nothing to show
        runs = []
    groups = by_group(runs)
    stats = [(compute_stats([r.final_val_loss for r in g], [r.training_time_s for r in g], target), g)
             for g in groups.values()]
    # A record is a claim about one recipe, settings and code: a folder holding runs of several such groups is
    # judged on its largest group (the lowest p among equals, then the earliest run's), never on their pool.
    s, counted = min(stats, key=lambda sg: (-sg[0].n, sg[0].p_value if sg[0].p_value is not None else 1.0),
                     default=(None, []))
    shown = counted or [r for r in runs if r.status != "malformed"]
    recipe = ", ".join(sorted({r.recipe for r in shown})) or "—"
    device = ", ".join(sorted({r.device for r in shown})) or "—"
    others = sum(len(g) for g in groups.values()) - len(counted)
    left_out = [f"+{others} of other code or settings"] if others else []
    if len(runs) > len(counted) + others:
        left_out.append(f"+{len(runs) - len(counted) - others} not counted")
    n = f"{len(counted)}" + (f" ({', '.join(left_out)})" if left_out else "")
    link = f"[{short_name}]({folder.name}/)"
    if s is None:
        return [date, link, recipe, device, n, "—", f"{target:g}", "—", "—"]
    # a record that fails the bar says so in its row, not only in the note `records --new` printed once
    p = format_p(s.p_value) + (" (degenerate: every loss equal)" if s.std == 0 else "") + (
        " (n < 2: no test)" if s.p_value is None else f" (not < {P_BAR:g})" if s.p_value >= P_BAR else "")
    return [date, link, recipe, device, n, f"{s.mean:.4f}", f"{target:g}", p, f"{s.time_mean_s:.1f}"]


def rebuild_records_table(records_dir: str = "records") -> Path:
    root = Path(records_dir)
    _check_root(root, must_exist=True)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = [_row(folder) for folder in folders if RECORD_DIR.match(folder.name)]
    ignored = [folder.name for folder in folders if not RECORD_DIR.match(folder.name)]
    head = ["date", "record", "recipe", "device", "runs", "mean final val loss", "target",
            "p-value (mean < target)", "mean training time (s)"]
    table = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * 5) + "|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    block = TABLE_START + "\n" + "\n".join(table) + "\n"
    if not rows:
        block += "\n(no records yet)\n"
    if ignored:
        block += f"\nIgnored (not named YYYY-MM-DD_short-name): {', '.join(ignored)}\n"
    out = root / "README.md"
    try:
        old = out.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except (OSError, UnicodeDecodeError) as e:
        raise SpeedrunError(f"{out}: cannot read it to keep its text ({e})") from None
    text = _with_table(old, block + TABLE_END + "\n")
    write_atomic(out, lambda f: f.write(text.encode("utf-8")))
    return out


def _with_table(old: str | None, block: str) -> str:
    """records/README.md's text with `block` as its table: between the marks, else in place of a table written
    before the marks existed (its header row to its last note), else after the text; everything else is kept."""
    if old is None:
        return INTRO + "\n" + block
    if TABLE_START in old and TABLE_END in old.split(TABLE_START, 1)[1]:
        before, rest = old.split(TABLE_START, 1)
        return before + block + rest.split(TABLE_END, 1)[1].removeprefix("\n")
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("| date | record |")), None)
    if start is None:
        return old.rstrip("\n") + "\n\n" + block
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    while end + 1 < len(lines) and not lines[end].strip() and lines[end + 1].startswith(("(no records yet)", "Ignored (")):
        end += 2
    return "".join(lines[:start]) + block + "".join(lines[end:])
