"""`speedrun stats`: run logs (ours, or upstream NanoGPT speedrun records) -> per-run results, statistics across
complete runs and a t-test verdict. Only complete runs count: a failed, incomplete (crashed, no end line) or
malformed log is listed with its status and left out of every number, so a half-finished run never passes for a result.
"""

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
from speedrun.files import each_file_once, folder_files
from speedrun.labels import group_label, label_settings, short_commit
from speedrun.runlog import LOG_SUFFIXES, LogError, ParsedLog, env_value, parse_log, read_log_text

DEFAULT_TARGET = 3.28
P_BAR = 0.01  # the speedrun record bar: p < 0.01 that the mean final val loss is below the target
_SMI_GPU = re.compile(r"^\|\s+(\d+)\s+(\S.*?)\s+(?:On|Off)\s+\|", re.M)  # nvidia-smi: '|   0  NVIDIA H100 ...  On  |'


@dataclass
class Run:
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
    copy_of: Path | None = None  # an earlier log with the same text (load_runs): listed, never counted twice
    first_part: "Run | None" = None  # a resumed run's earlier steps' log, where it is among the inputs (load_runs)
    # the resume among the inputs that goes on with this unfinished run (load_runs): this log is that run's first
    # part, joined to it, not a run of its own
    continued_in: "Run | None" = None

    @property
    def counted(self) -> bool:  # complete, and (no reason) with a val loss at the last planned step
        return self.status == "complete" and not self.reason

    @property
    def damaged(self) -> bool:
        """A run log spoilt or edited mid-way (runlog names its line: 'line N: ...'): a run log still, unlike the
        other malformed files (not run logs at all)."""
        return self.status == "malformed" and self.reason.startswith("line ")

    @property
    def group(self) -> tuple[str, str, str]:
        """(recipe, the code that ran, every recipe value but the seed): runs are pooled only when they ran the same
        recipe values, so runs that differ by a --set are never averaged together; runs of other seeds are repeats.
        The code is the hash of the package source the log holds, so two commits whose package is identical (a
        docs-only commit, or a modified checkout equal to the next commit) pool; the commit where no source is
        logged."""
        values = {k: v for k, v in (self.log.recipe if self.log is not None else {}).items()
                  if k not in ("description", "seed")}
        code = self.log.code_hash if self.log is not None else ""
        return (self.recipe, f"code {code}" if code else self.version, json.dumps(values, sort_keys=True))

    @property
    def version(self) -> str:
        """The short commit; for a modified checkout (or none) also the logged code's hash: the commit alone then does
        not say what ran, and runs of different code must not be pooled."""
        short, code = short_commit(self.commit), self.log.code_hash if self.log is not None else ""
        clean = re.fullmatch(r"[0-9a-f]{7,10}", short) is not None
        return f"{short} code {code[:8]}" if code and not clean else short


@dataclass
class Stats:  # of the final val loss and training time over the counted runs of one set
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
    labels: dict[tuple[str, str, str], str] = field(default_factory=dict)  # Run.group -> group_label
    shared: str = ""  # settings every group shares, left out of the labels (label_settings)

    @property
    def counted(self) -> list[Run]:
        return [r for r in self.runs if r.counted]


def find_logs(paths: list[str]) -> list[Path]:
    found_all: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:  # symlinked folders followed, as tokenize's inputs; hidden ones (a write's temporary) left out
                found = [f for f in folder_files(p) if f.name.endswith(LOG_SUFFIXES)]
            except OSError as e:
                raise SpeedrunError(f"{e.filename or p}: cannot list the folder ({e.strerror or e})") from None
            if not found:
                raise SpeedrunError(f"{p}: folder has no *.txt or *.txt.xz run logs")
        elif p.is_file():
            found = [p]
        else:
            raise SpeedrunError(f"{p}: no such file or folder")
        found_all += found
    return each_file_once(found_all)


def device_name(environment: str) -> str:
    """'NVIDIA H100 80GB HBM3 x 1' (the environment's gpu: line) -> '1x NVIDIA H100 80GB HBM3'; else 'cpu'.
    An environment without our keys (an upstream log's) is read from its nvidia-smi table: '8x NVIDIA H100 ...'
    (the GPUs of the machine, which upstream runs use all of)."""
    if gpu := env_value(environment, "gpu"):
        m = re.fullmatch(r"(.*) x (\d+)", gpu)
        return f"{m[2]}x {m[1]}" if m else gpu
    if env_value(environment, "cuda_available") is None:  # ours says cuda_available: False on a CPU run
        if names := Counter(name for _, name in _SMI_GPU.findall(environment)):
            return ", ".join(f"{n}x {name}" for name, n in names.items())
    return "cpu"


def load_run(path: Path) -> Run:
    try:
        log = parse_log(path)
    except LogError as e:
        return Run(path, "malformed", str(e).removeprefix(f"{path}: "))  # the file is named in its own column
    # (step, time) of every line: the latest step's time, not the largest time (upstream's first steps count the
    # compilation, then its clock restarts)
    done, latest_ms = max([(s, t) for s, t, _ in log.train_steps] + [(s, t) for s, _, t in log.val], default=(0, None))
    # a complete run's time is the one of its last validation, as in the records; otherwise the latest seen
    time_ms = log.training_time_ms if log.complete else latest_ms
    run = Run(path, log.status, log.failure, log, recipe=str(log.recipe.get("name", "?")),
              commit=env_value(log.environment, "git_commit") or "unknown", device=device_name(log.environment),
              final_val_loss=log.final_val_loss, last_val=log.last_val[:2] if log.last_val else None,
              steps_done=done, steps_planned=log.steps, training_time_s=None if time_ms is None else time_ms / 1000)
    if log.complete and log.final_val_loss is None:
        last = f"at step {log.val[-1][0]}" if log.val else "none"
        run.reason = f"no val loss at the last step {log.steps} (last val: {last}); not counted"
    if log.damaged_line is not None:  # read up to it, as a crash's log: said, so the cut is not taken for the run's
        run.reason = f"its last line is damaged (line {log.damaged_line}): read up to it"
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


def load_runs(paths: list[str]) -> list[Run]:
    """The runs of the logs under `paths` (find_logs). A log whose text equals an earlier one's (a copy, renamed or
    compressed) is the same run: it is listed with the reason, but not counted again, so it cannot lower a p-value.
    Nor is a deterministic rerun: a complete run of the same group and seed whose train and val losses equal an
    earlier one's at every step both logged, where one's steps hold the other's (a CPU run repeats bitwise; a resume
    from a checkpoint of a run that went on replays its last steps). It adds no information about the spread, only
    n. A GPU rerun differs in its losses within a few steps, so it counts. Of two such logs the one that logged more
    steps counts (a straight run, not a resume that holds only its last steps), else the earlier."""
    runs: list[Run] = []
    first: dict[str, Run] = {}
    counted: dict[tuple, list[tuple[Run, dict, dict]]] = {}  # (group, seed) -> runs and their losses by step
    for path in find_logs(paths):
        run = load_run(path)
        if run.log is not None and (original := first.setdefault(run.log.text_hash, run)) is not run:
            run.copy_of, run.reason = original.path, f"a copy of {original.path}; not counted again"
        elif run.counted:
            _replays(run, counted)
        runs.append(run)
    by_name: dict[str, Run] = {}
    for r in sorted(runs, key=lambda r: r.copy_of is not None):  # a log before its copies: the copy is listed apart
        if r.log is not None:
            by_name.setdefault(r.path.name.removesuffix(".xz"), r)
    for r in runs:  # the note names the first part's path from where the run ran: its file name is what is known
        if r.log is not None and r.log.first_part:
            r.first_part = by_name.get(Path(r.log.first_part).name.removesuffix(".xz"))
            r.first_part = None if r.first_part is r else r.first_part
    # A first part that stopped (interrupted, failed, crashed) and was resumed is one run with its resume: not
    # another failed run beside it. One that completed is a run of its own, which a resume from one of its periodic
    # checkpoints branched off.
    for r in sorted(runs, key=lambda r: r.copy_of is not None):  # joined to a resume's log rather than its copy's
        part = r.first_part
        if part is not None and part.status in ("failed", "incomplete") and part.continued_in is None \
                and listed_as(r) is not part:
            part.continued_in = r
    return runs


def listed_as(run: Run) -> Run:
    """The run a joined first part belongs to (Run.continued_in, through resumes of resumes); else `run`."""
    seen = {id(run)}
    while run.continued_in is not None and id(run.continued_in) not in seen:
        run = run.continued_in
        seen.add(id(run))
    return run


def joined_note(part: Run) -> str:
    """What the report says of a first part joined to its resume (Run.continued_in), in place of its own row."""
    stopped = (f"failed: {part.reason.split(';')[0]}" if part.status == "failed" and part.reason
               else f"{part.status} at step {part.steps_done}")
    resume, run = part.continued_in, listed_as(part)
    listed = "" if run is resume else f", listed as {run.path.name}"
    # code edited between the stop and the resume: the run is labelled (and grouped) by its last part's code, so say
    # that its first steps ran other code rather than let it pass as a run of one version
    def code(r: Run) -> str:
        return r.version if " code " in r.version else f"{r.version} code {r.log.code_hash[:8]}"
    hybrid = (f"; its parts ran different code ({code(part)} to step {resume.log.resumed_at}, then {code(resume)})"
              if part.log is not None and part.log.code_hash != resume.log.code_hash else "")
    return (f"{part.path.name} ({stopped}) is the first part of {resume.path.name}, which resumed it at step "
            f"{resume.log.resumed_at}: joined, one run{listed}{hybrid}")


def _replays(run: Run, counted: dict) -> None:
    """Left out `run`, or the counted run it repeats loss for loss if that logged fewer steps (see load_runs); else
    `run` joins the counted ones."""
    train = {s: loss for s, _, loss in run.log.train_steps}
    val = {s: loss for s, loss, _ in run.log.val}
    # the seed as JSON: an edited log's may be a list, which no dict key can be
    same = counted.setdefault((run.group, json.dumps(run.log.recipe.get("seed"), sort_keys=True)), [])
    for i, (other, other_train, other_val) in enumerate(same):
        common = train.keys() & other_train.keys()
        if common and (train.keys() <= other_train.keys() or other_train.keys() <= train.keys()) and all(
                train[s] == other_train[s] for s in common) and all(val[s] == other_val[s] for s in val.keys()
                                                                      & other_val.keys()):
            if len(train) + len(val) > len(other_train) + len(other_val):
                same[i] = (run, train, val)
                _left_out(other, run, fewer=True)
            else:
                _left_out(run, other, fewer=len(train) + len(val) < len(other_train) + len(other_val))
            return
    same.append((run, train, val))


def _left_out(run: Run, kept: Run, fewer: bool) -> None:
    run.copy_of = kept.path
    more = "; that one logged more steps" if fewer else ""
    run.reason = f"repeats {kept.path} loss for loss (same seed, deterministic{more}); not counted again"


def joined_val(run: Run, seen: frozenset = frozenset()) -> tuple[list[tuple[int, float, float]], bool]:
    """A run's (step, val loss, time ms), a resumed run's first part's up to the resume before its own where that
    log is among the inputs (its clock goes on from the checkpoint's), and whether they reach back to the start."""
    own = list(run.log.val) if run.log is not None else []
    if run.log is None or run.log.resumed_at is None:
        return own, True
    if run.first_part is None or run.first_part.log is None or id(run) in seen:
        return own, False
    earlier, whole = joined_val(run.first_part, seen | {id(run)})
    logged = {s for s, _, _ in own}
    return [v for v in earlier if v[0] <= run.log.resumed_at and v[0] not in logged] + own, whole


def to_target(run: Run, target: float) -> tuple[str, bool]:
    """The table's time to target ('12.5 @ 20', 'not reached'), and whether it is a bound: a resumed run whose first
    part's log is not among the inputs may have met the target before the resume, which its own log cannot say."""
    vals, whole = joined_val(run)
    hit = first_at_or_below(vals, target)
    if whole:
        return (f"{hit[1]:.1f} @ {hit[0]}" if hit else "not reached"), False
    return (f"≤{hit[1]:.1f} @ ≤{hit[0]}" if hit else f"not after step {run.log.resumed_at}"), True


def first_at_or_below(vals: list[tuple[int, float, float]], target: float) -> tuple[int, float] | None:
    """(step, training seconds) of the first of `vals` (step, val loss, training ms) at or below `target`, or None.
    This is the speedrun's clock read where the target was first met (validations are off the clock)."""
    return next(((step, ms / 1000) for step, loss, ms in vals if loss <= target), None)


def time_to_target(log: ParsedLog | None, target: float) -> tuple[int, float] | None:
    """first_at_or_below over one log's validations."""
    return first_at_or_below(log.val if log is not None else [], target)


def compute_stats(losses: list[float], times_s: list[float], target: float) -> Stats:
    x, times = np.asarray(losses, dtype=np.float64), np.asarray(times_s, dtype=np.float64)
    n = len(x)
    std = t = p = ci = None
    if n >= 2:
        std = float(x.std(ddof=1))
        with warnings.catch_warnings():  # identical values: scipy warns; the report says so itself
            warnings.simplefilter("ignore", RuntimeWarning)
            res = scipy.stats.ttest_1samp(x, target, alternative="less")
        t, p = float(res.statistic), float(res.pvalue)
        if x.min() == x.max():  # equal losses: their spread is rounding, their t a huge float (the verdict says so)
            std, t = 0.0, math.copysign(math.inf, float(x.mean()) - target) if x.mean() != target else math.nan
            p = 0.0 if t < 0 else 1.0
        half = scipy.stats.t.ppf(0.975, n - 1) * times.std(ddof=1) / math.sqrt(n)
        ci = (float(times.mean() - half), float(times.mean() + half))
    clipped = ci is not None and ci[0] < 0
    if clipped:  # a time is never negative: the symmetric t interval only says the mean is poorly known
        ci = (0.0, ci[1])
    return Stats(n, target, float(x.mean()), std, float(x.min()), float(x.max()), t, p, float(times.mean()), ci,
                 clipped)


def by_group(runs: list[Run]) -> dict[tuple[str, str, str], list[Run]]:
    """The counted runs by Run.group, in the runs' order: the sets a verdict may judge."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        if r.counted:
            groups.setdefault(r.group, []).append(r)
    return groups


def summarize(paths: list[str], target: float = DEFAULT_TARGET) -> Summary:
    runs = load_runs(paths)
    if all(r.status == "malformed" for r in runs):  # nothing here is a run log: a user error, not a report
        why = f"{runs[0].path}: {runs[0].reason}"
        raise LogError(why if len(runs) == 1 else f"none of the {len(runs)} files is a run log ({why})")
    counted = [r for r in runs if r.counted]

    def stats_of(rs: list[Run]) -> Stats:
        return compute_stats([r.final_val_loss for r in rs], [r.training_time_s for r in rs], target)

    groups = by_group(counted)
    settings, shared = label_settings(counted)
    return Summary(target, runs, stats_of(counted) if counted else None,
                   {k: stats_of(v) for k, v in sorted(groups.items())},
                   {k: group_label(v, settings[k]) for k, v in groups.items()}, shared)


def format_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2e}" if 0 < p < 1e-4 else f"{p:.4f}"


def verdict(s: Stats | None) -> str:
    if s is None:
        return "VERDICT: no complete run: nothing to judge"
    if s.n < 2:
        return (f"VERDICT: not enough runs (need n >= 2): 1 complete run, final val loss {s.mean:.4f} "
                f"vs target {s.target:g}")
    head = f"VERDICT: mean {s.mean:.4f} {'<' if s.mean < s.target else '>='} {s.target:g}"
    if s.min == s.max:  # every loss equal: scipy gives p ~ 0 from rounding noise
        return (f"{head} (n = {s.n}) but every final val loss is identical: the t-test is degenerate "
                "(copies of one run?)")
    meets = "meets" if s.meets_bar else "does not meet"
    return f"{head} with p = {format_p(s.p_value)} (n = {s.n}): {meets} the record's p < {P_BAR:g} bar"


def data_note(runs: list[Run], who: str = "these runs") -> str | None:
    """A note where runs judged together trained or validated on different files (their logs' `data` sections
    differ: another tokenization, another val split): their losses need not be comparable. Logs written before
    that section existed say nothing either way."""
    known = {r.log.data_hash for r in runs if r.log is not None and r.log.data_hash}
    if len(known) < 2:
        return None
    return (f"note: {who} used {len(known)} different sets of data files (the logs' data sections differ); "
            "their val losses may not be comparable")


MALFORMED_ROWS = 5  # files that are not run logs get a row each up to this many; the rest are counted in one line
NAMED_GROUPS = 3  # at most this many groups that meet the bar are named in the verdict line (lowest p first)


def groups_verdict(summary: Summary) -> str:
    """The verdict when the complete runs form several groups: their pool is no claim (a record is one recipe,
    settings and code), so each group is judged on its own and those that meet the bar are named."""
    meeting = [(summary.labels[k], g) for k, g in summary.groups.items() if g.meets_bar]
    head = (f"VERDICT: no pooled verdict: the {summary.overall.n} complete runs are {len(summary.groups)} groups "
            "(recipe values or code differ)")
    if not meeting:
        return f"{head}; none meets the record's p < {P_BAR:g} bar on its own"
    meeting.sort(key=lambda lg: lg[1].p_value)
    named = "; ".join(f"{label} (mean {g.mean:.4f}, p = {format_p(g.p_value)}, n = {g.n})"
                      for label, g in meeting[:NAMED_GROUPS])
    if len(meeting) > NAMED_GROUPS:  # one line stays readable; the groups' table above lists every verdict
        named += f"; and {len(meeting) - NAMED_GROUPS} more (each group's verdict is listed above)"
    which = "one group meets" if len(meeting) == 1 else f"{len(meeting)} groups meet"
    own = "on its own" if len(meeting) == 1 else "each on its own"
    return f"{head}; {which} the record's p < {P_BAR:g} bar {own}: {named}"


def _stats_lines(s: Stats, indent: str = "  ") -> list[str]:
    lines = [f"{indent}final val loss: mean {s.mean:.4f}"
             + (f", std {s.std:.4f}" if s.std is not None else "") + f", min {s.min:.4f}, max {s.max:.4f}"]
    if s.p_value is not None:
        same = " (degenerate: every loss is the same)" if s.std == 0 else ""
        lines.append(f"{indent}t-test (one-sided, H1: mean < {s.target:g}): t = {s.t:.3f}, p = {format_p(s.p_value)}"
                     + same)
    ci = f", 95% CI [{s.time_ci_s[0]:.1f}, {s.time_ci_s[1]:.1f}] s" if s.time_ci_s is not None else ""
    clipped = " (lower end clipped at 0: too few or too spread runs for a t interval)" if s.time_ci_clipped else ""
    return lines + [f"{indent}training time: mean {s.time_mean_s:.1f} s{ci}{clipped}"]


def format_summary(summary: Summary) -> str:
    rows = [["file", "recipe", "commit", "final val", "steps", "time (s)", f"to {summary.target:g} (s @ step)",
             "status"]]
    # files that are not run logs: a row each up to MALFORMED_ROWS; a damaged run log always has its row
    malformed = [r for r in summary.runs if r.status == "malformed" and not r.damaged]
    with_a_row = {id(r) for r in malformed[:MALFORMED_ROWS]} | {id(r) for r in summary.runs if r.damaged}
    bounds = 0
    for r in summary.runs:
        if r.continued_in is not None:  # said under the table: a part of the run its resume's row shows
            continue
        if r.status == "malformed":
            if id(r) in with_a_row:
                rows.append([r.path.name, "", "", "", "", "", "", f"malformed: {r.reason}"])
            continue
        status = r.status + (f": {r.reason}" if r.reason else "") + (" (not counted)" if r.status != "complete" else "")
        # a finished run's final val loss; any other's last val loss after step 0 (never step 0's: untrained)
        final = (f"{r.final_val_loss:.4f}" if r.final_val_loss is not None else
                 f"last val {r.last_val[1]:.4f} @ step {r.last_val[0]}" if r.last_val else "—")
        hit, bound = to_target(r, summary.target)
        bounds += bound
        rows.append([r.path.name, r.recipe, r.version, final, f"{r.steps_done}/{r.steps_planned}",
                     f"{r.training_time_s:.1f}" if r.training_time_s is not None else "—", hit, status])
    widths = [max(map(len, column)) for column in zip(*rows)]
    align = [str.rjust if 3 <= i <= 6 else str.ljust for i in range(len(widths))]  # the numbers' columns: right
    files = f"{len(summary.runs) - len(malformed)} log(s)" + (f" (+{len(malformed)} other file(s))" if malformed else "")
    lines = [f"{files}, target val loss {summary.target:g}",
             *("  " + "  ".join(a(c, w) for a, c, w in zip(align, r, widths)).rstrip() for r in rows)]
    if len(malformed) > MALFORMED_ROWS:
        names = ", ".join(sorted({r.path.name for r in malformed[MALFORMED_ROWS:]})[:3])
        lines.append(f"  ... and {len(malformed) - MALFORMED_ROWS} more files that are not run logs, left out "
                     f"(such as {names})")
    lines += [f"  note: {joined_note(r)}" for r in summary.runs if r.continued_in is not None]
    if bounds:
        lines.append(f"  ≤ / not after: {bounds} resumed run(s) without their first part's log among these (the log its "
                     "'resumed from' note names): the target may have been met before the resume; give that log too")
    lines.append("")
    s = summary.overall
    if s is None:
        lines.append("no complete runs: nothing to summarize (incomplete, failed and malformed logs are not results)")
    else:
        lines += [f"complete runs: n = {s.n}", *_stats_lines(s)]
        if len(summary.groups) > 1:
            shared = f" (every run: {summary.shared})" if summary.shared else ""
            lines += ["", f"by recipe, settings and code{shared}:"]
            for key, g in summary.groups.items():
                lines += [f"  {summary.labels[key]}: n = {g.n}", *_stats_lines(g, "    "),
                          "    " + verdict(g).replace("VERDICT: ", "verdict: ")]
            lines += ["", f"note: the overall numbers pool {len(summary.groups)} groups (recipe values or code "
                          "differ); a record is judged on the runs of one group"]
    groups = by_group(summary.counted)
    mixed = [note for runs in groups.values()
             if (note := data_note(runs, f"the {len(runs)} runs of {summary.labels[runs[0].group]}"))]
    lines += [""] + mixed if mixed else []
    for runs in groups.values():  # repeats of one seed are so only within a group: other groups ran other values
        seed = runs[0].log.recipe.get("seed")
        if len(runs) > 1 and seed is not None and all(r.log.recipe.get("seed") == seed for r in runs):
            who = "every run" + (f" of {summary.labels[runs[0].group]}" if len(groups) > 1 else "")
            lines += ["", f"note: {who} used seed {seed}, so they differ only by the device's nondeterminism: "
                          "the t-test says how well a run repeats, not how it varies with the seed (--set seed=N to "
                          "vary it)"]
    lines += ["", groups_verdict(summary) if len(summary.groups) > 1 else verdict(s)]
    return "\n".join(lines)


def stats_report(paths: list[str], target: float = DEFAULT_TARGET) -> tuple[str, bool]:
    """(report text, at least one complete run). Raises SpeedrunError for a missing path, an empty folder, or
    when no file at all is a run log (a malformed one among good ones is listed instead)."""
    summary = summarize(paths, target)
    return format_summary(summary), summary.overall is not None
