"""`speedrun stats`: run logs -> per-run results, statistics across complete runs and a t-test verdict.

Only complete runs count: a failed, incomplete (crashed, no end line) or malformed log is listed with its status
and left out of every number, so a half-finished run can never pass for a result. `summarize` returns the
numbers (tests and `speedrun.records` use it); `stats_report` formats them. The upstream NanoGPT speedrun's record
logs read as runs too (see speedrun.runlog), so our runs and upstream records fit in one table.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.stats

from speedrun.errors import SpeedrunError
from speedrun.runlog import LOG_SUFFIXES, LogError, ParsedLog, parse_log, read_log_text

DEFAULT_TARGET = 3.28
P_BAR = 0.01  # the speedrun record bar: p < 0.01 that the mean final val loss is below the target


@dataclass
class Run:
    """One log file as the statistics see it."""

    path: Path
    status: str  # complete | failed | incomplete | malformed
    reason: str = ""  # why failed / malformed / not counted
    log: ParsedLog | None = None
    recipe: str = "?"
    commit: str = "?"
    device: str = "cpu"
    final_val_loss: float | None = None  # only for a finished run: val loss at the last planned step
    last_val: tuple[int, float] | None = None  # (step, loss) of the last validation after step 0
    steps_done: int | None = None
    steps_planned: int | None = None
    training_time_s: float | None = None

    @property
    def counted(self) -> bool:
        """In the statistics: complete, with a val loss at the last planned step."""
        return self.status == "complete" and not self.reason

    @property
    def changed(self) -> dict:
        """The recipe fields this run changed, {key: value} (see changed_fields)."""
        if self.log is None or self.log.source != "speedrun":  # an upstream log's name is no recipe of ours
            return {}
        return changed_fields(self.log.recipe)

    @property
    def settings(self) -> str:
        """The recipe fields this run changed (`key=value ...`, see recipe_changes); "" for none."""
        return format_fields(self.changed)

    @property
    def group(self) -> tuple[str, str, str]:
        """(recipe, commit, every recipe value): runs are pooled only when they ran the same recipe values,
        so runs that differ by a --set are never averaged together."""
        values = {k: v for k, v in (self.log.recipe if self.log is not None else {}).items() if k != "description"}
        return (self.recipe, self.commit, json.dumps(values, sort_keys=True))

    @property
    def group_label(self) -> str:
        return group_label(self, self.settings)


def group_label(run: Run, settings: str) -> str:
    return f"{run.recipe}{' ' + settings if settings else ''} @ {short_commit(run.commit)}"


# Left out of a label unless they are what tells two groups apart (see label_settings): the name is the label's
# first word; the validation size rarely changes. The data files do show: a run on the bundled demo corpus and one
# on data/mine must not look alike.
UNLABELLED_FIELDS = {"val_tokens", "name", "description"}


def changed_fields(recipe: dict) -> dict:
    """The fields of a logged recipe that differ from the recipe of that name as this checkout defines it (what a
    reader needs to tell runs of one recipe apart); {} when none or the name is unknown."""
    from speedrun.recipe import RecipeError, load_recipe

    try:
        current = load_recipe(str(recipe.get("name"))).to_dict()
    except RecipeError:
        return {}
    return {k: v for k, v in recipe.items() if k not in UNLABELLED_FIELDS and k in current and current[k] != v}


def format_fields(fields: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def recipe_changes(recipe: dict) -> str:
    """changed_fields as `key=value ...`; "" when none or the name is unknown."""
    return format_fields(changed_fields(recipe))


def label_settings(runs: list[Run]) -> dict[tuple[str, str, str], str]:
    """Run.group -> the settings its label shows: recipe_changes, plus, where groups of one recipe name would still
    look alike (they differ in a field recipe_changes leaves out, or their recipe is not defined in this checkout),
    every field that tells them apart."""
    first: dict[tuple[str, str, str], Run] = {}
    for r in runs:
        first.setdefault(r.group, r)
    shown = {key: r.changed for key, r in first.items()}
    alike: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for key, r in first.items():  # the commit is left out: it shows in the stats labels, and per-run lines differ
        alike.setdefault((r.recipe, format_fields(shown[key])), []).append(key)
    for keys in alike.values():
        if len(keys) < 2:
            continue
        values = {k: json.loads(k[2]) for k in keys}
        names = sorted(set().union(*values.values()) - {"name", "description"})
        differ = [f for f in names if len({json.dumps(v.get(f), sort_keys=True) for v in values.values()}) > 1]
        for k in keys:
            shown[k] = {**shown[k], **{f: values[k].get(f, "(not logged)") for f in differ if f not in shown[k]}}
    return {key: format_fields(fields) for key, fields in shown.items()}


@dataclass
class Stats:
    """Statistics of the final val loss and training time over the counted runs of one set."""

    n: int
    target: float
    mean: float
    std: float | None  # ddof=1; None for n < 2
    min: float
    max: float
    t: float | None  # one-sample t statistic (None for n < 2)
    p_value: float | None  # scipy.stats.ttest_1samp(losses, target, alternative='less').pvalue
    time_mean_s: float
    time_ci_s: tuple[float, float] | None  # 95% t interval of the mean training time (None for n < 2), lower >= 0
    time_ci_clipped: bool = False  # the t interval reached below 0 s (few, spread runs): its lower end is set to 0

    @property
    def meets_bar(self) -> bool:
        return self.p_value is not None and self.min != self.max and self.mean < self.target and self.p_value < P_BAR


@dataclass
class Summary:
    target: float
    runs: list[Run]
    overall: Stats | None  # None when no run counts
    groups: dict[tuple[str, str, str], Stats] = field(default_factory=dict)  # Run.group -> stats
    labels: dict[tuple[str, str, str], str] = field(default_factory=dict)  # Run.group -> Run.group_label

    @property
    def counted(self) -> list[Run]:
        return [r for r in self.runs if r.counted]


def find_logs(paths: list[str]) -> list[Path]:
    """Files as given; folders -> their *.txt and *.txt.xz files, recursively, sorted. Each file once."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(LOG_SUFFIXES))
            if not found:
                raise SpeedrunError(f"{p}: folder has no *.txt or *.txt.xz run logs")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise SpeedrunError(f"{p}: no such file or folder")
    seen, unique = set(), []
    for p in out:  # a file named on its own and inside a named folder must not count twice
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def _env_value(environment: str, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}: *(.*)$", environment, re.M)
    return m.group(1).strip() if m else None


_SMI_GPU = re.compile(r"^\|\s+(\d+)\s+(\S.*?)\s+(?:On|Off)\s+\|", re.M)  # nvidia-smi: '|   0  NVIDIA H100 ...  On  |'


def device_name(environment: str) -> str:
    """'NVIDIA H100 80GB HBM3 x 1' (the environment's gpu: line) -> '1x NVIDIA H100 80GB HBM3'; else 'cpu'.
    An environment without our keys (an upstream log's) is read from its nvidia-smi table: '8x NVIDIA H100 ...'
    (the GPUs of the machine, which upstream runs use all of)."""
    gpu = _env_value(environment, "gpu")
    if gpu:
        m = re.fullmatch(r"(.*) x (\d+)", gpu)
        return f"{m[2]}x {m[1]}" if m else gpu
    if _env_value(environment, "cuda_available") is None:  # ours says cuda_available: False on a CPU run
        names = Counter(name for _, name in _SMI_GPU.findall(environment))
        if names:
            return ", ".join(f"{n}x {name}" for name, n in names.items())
    return "cpu"


def load_run(path: Path) -> Run:
    try:
        log = parse_log(path)
    except LogError as e:
        reason = str(e)
        if reason.startswith(f"{path}: "):  # the file is named in its own column
            reason = reason[len(str(path)) + 2:]
        return Run(path, "malformed", reason)
    done = max([s for s, *_ in log.train_steps] + [s for s, *_ in log.val], default=0)
    # (step, time) of every line: the latest step's time, not the largest time (upstream's first steps count the
    # compilation, then its clock restarts)
    points = [(s, t) for s, t, _ in log.train_steps] + [(s, t) for s, _, t in log.val]
    run = Run(path, log.status, log.failure, log, recipe=str(log.recipe.get("name", "?")),
              commit=_env_value(log.environment, "git_commit") or "unknown", device=device_name(log.environment),
              final_val_loss=log.final_val_loss, last_val=log.last_val[:2] if log.last_val else None,
              steps_done=done, steps_planned=log.steps,
              # a complete run's time is the one of its last validation, as in the records; otherwise the latest seen
              training_time_s=(log.training_time_ms if log.complete else max(points, default=(0, None))[1]))
    if run.training_time_s is not None:
        run.training_time_s /= 1000
    if log.complete and not log.finished:
        last = f"at step {log.val[-1][0]}" if log.val else "none"
        run.reason = f"no val loss at the last step {log.steps} (last val: {last}); not counted"
    if log.source == "upstream":
        if run.device == "cpu":  # no nvidia-smi table: upstream never trains on a CPU, the GPU is just not named
            run.device = "unknown"
        if not log.complete:
            run.reason = f"upstream log without a val loss at its last step {log.steps}"
    if log.status == "incomplete" and not log.train_steps and not log.val:
        run.reason = "no step lines under '=== steps ==='"
        if re.search(r"^=== end: ", read_log_text(path, errors="replace"), re.M):
            # early logs wrote '=== plan ===' after '=== steps ===': the parser reads neither steps nor end line
            run.reason += " and the end line lies in a later section (an older section order)"
    return run


def time_to_target(log: ParsedLog | None, target: float) -> tuple[int, float] | None:
    """(step, training seconds) of the first validation at or below `target`, or None if no validation got there.
    This is the speedrun's clock read where the target was first met (validations are off the clock)."""
    for step, loss, ms in (log.val if log is not None else []):
        if loss <= target:
            return step, ms / 1000
    return None


def compute_stats(losses: list[float], times_s: list[float], target: float) -> Stats:
    x = np.asarray(losses, dtype=np.float64)
    n = len(x)
    std = t = p = ci = None
    times = np.asarray(times_s, dtype=np.float64)
    if n >= 2:
        std = float(x.std(ddof=1))
        with warnings.catch_warnings():  # identical values: scipy warns; the report says so itself
            warnings.simplefilter("ignore", RuntimeWarning)
            res = scipy.stats.ttest_1samp(x, target, alternative="less")
        t, p = float(res.statistic), float(res.pvalue)
        half = scipy.stats.t.ppf(0.975, n - 1) * times.std(ddof=1) / math.sqrt(n)
        ci = (float(times.mean() - half), float(times.mean() + half))
    clipped = ci is not None and ci[0] < 0
    if clipped:  # a time is never negative: the symmetric t interval only says the mean is poorly known
        ci = (0.0, ci[1])
    return Stats(n, target, float(x.mean()), std, float(x.min()), float(x.max()), t, p, float(times.mean()), ci,
                 clipped)


def summarize(paths: list[str], target: float = DEFAULT_TARGET) -> Summary:
    runs = [load_run(p) for p in find_logs(paths)]
    if all(r.status == "malformed" for r in runs):  # nothing here is a run log: a user error, not a report
        first = runs[0]
        raise LogError(f"{first.path}: {first.reason}" if len(runs) == 1 else
                       f"none of the {len(runs)} files is a run log ({first.path}: {first.reason})")
    counted = [r for r in runs if r.counted]

    def stats_of(rs: list[Run]) -> Stats:
        return compute_stats([r.final_val_loss for r in rs], [r.training_time_s for r in rs], target)

    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in counted:
        groups.setdefault(r.group, []).append(r)
    settings = label_settings(counted)
    return Summary(target, runs, stats_of(counted) if counted else None,
                   {k: stats_of(v) for k, v in sorted(groups.items())},
                   {k: group_label(v[0], settings[k]) for k, v in groups.items()})


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2e}" if 0 < p < 1e-4 else f"{p:.4f}"


def short_commit(commit: str) -> str:
    """40-hex (modified) -> first 10 hex digits, '*' when the tree was modified."""
    m = re.fullmatch(r"([0-9a-f]{7,40})( \(modified\))?", commit)
    return (m[1][:10] + ("*" if m[2] else "")) if m else commit


def verdict(s: Stats | None) -> str:
    if s is None:
        return "VERDICT: no complete run: nothing to judge"
    if s.n < 2:
        return (f"VERDICT: not enough runs (need n >= 2): 1 complete run, final val loss {s.mean:.4f} "
                f"vs target {s.target:g}")
    head = f"VERDICT: mean {s.mean:.4f} {'<' if s.mean < s.target else '>='} {s.target:g}"
    if s.min == s.max:  # every loss equal: scipy gives p ~ 0 from rounding noise
        return f"{head} (n = {s.n}) but every final val loss is identical: the t-test is degenerate (copies of one run?)"
    tail = f"with p = {format_p(s.p_value)} (n = {s.n})"
    if s.meets_bar:
        return f"{head} {tail}: meets the record's p < {P_BAR:g} bar"
    return f"{head} {tail}: does not meet the record's p < {P_BAR:g} bar"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _stats_lines(s: Stats, indent: str = "  ") -> list[str]:
    lines = [f"{indent}final val loss: mean {s.mean:.4f}"
             + (f", std {s.std:.4f}" if s.std is not None else "") + f", min {s.min:.4f}, max {s.max:.4f}"]
    if s.p_value is not None:
        lines.append(f"{indent}t-test (one-sided, H1: mean < {s.target:g}): t = {s.t:.3f}, p = {format_p(s.p_value)}")
    time = f"{indent}training time: mean {s.time_mean_s:.1f} s"
    if s.time_ci_s is not None:
        time += f", 95% CI [{s.time_ci_s[0]:.1f}, {s.time_ci_s[1]:.1f}] s"
        if s.time_ci_clipped:
            time += " (lower end clipped at 0: too few or too spread runs for a t interval)"
    return lines + [time]


def final_cell(r: Run) -> str:
    """A finished run's final val loss; for any other the last val loss logged after step 0, with its step (step
    0's loss is the untrained model's: never shown as a result)."""
    if r.final_val_loss is not None:
        return f"{r.final_val_loss:.4f}"
    return f"last val {r.last_val[1]:.4f} @ step {r.last_val[0]}" if r.last_val else "—"


def format_summary(summary: Summary) -> str:
    head = ["file", "recipe", "commit", "final val", "steps", "time (s)", f"to {summary.target:g} (s @ step)", "status"]
    rows = [head]
    for r in summary.runs:
        if r.status == "malformed":
            rows.append([r.path.name, "", "", "", "", "", "", f"malformed: {r.reason}"])
            continue
        status = r.status + (f": {r.reason}" if r.reason else "")
        if r.status != "complete":
            status += " (not counted)"
        rows.append([r.path.name, r.recipe, short_commit(r.commit), final_cell(r),
                     f"{r.steps_done}/{r.steps_planned}",
                     f"{r.training_time_s:.1f}" if r.training_time_s is not None else "—",
                     (lambda hit: f"{hit[1]:.1f} @ {hit[0]}" if hit else "not reached")(time_to_target(r.log, summary.target)),
                     status])
    s = summary.overall
    lines = [f"{len(summary.runs)} log(s), target val loss {summary.target:g}", *_table(rows, {3, 4, 5, 6}), ""]
    if s is None:
        lines.append("no complete runs: nothing to summarize (incomplete, failed and malformed logs are not results)")
    else:
        lines += [f"complete runs: n = {s.n}", *_stats_lines(s)]
        if len(summary.groups) > 1:
            lines += ["", "by recipe, settings and commit:"]
            for key, g in summary.groups.items():
                lines += [f"  {summary.labels[key]}: n = {g.n}", *_stats_lines(g, "    "),
                          "    " + verdict(g).replace("VERDICT: ", "verdict: ")]
            lines += ["", f"note: the overall numbers pool {len(summary.groups)} groups (recipe values or commit "
                          "differ); a record is judged on the runs of one group"]
    lines += ["", verdict(s)]
    return "\n".join(lines)


def stats_report(paths: list[str], target: float = DEFAULT_TARGET) -> tuple[str, bool]:
    """(report text, at least one complete run). Raises SpeedrunError for a missing path, an empty folder, or
    when no file at all is a run log (a malformed one among good ones is listed instead)."""
    summary = summarize(paths, target)
    return format_summary(summary), summary.overall is not None
