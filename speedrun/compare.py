"""`speedrun compare`: a change against a baseline, from their run logs. The final val loss of the two sets is compared
paired by seed where both sides ran the same seeds (each seed's initialisation is then the same, and the data order
is the same at every seed, so the seed-to-seed spread drops out) and unpaired (Welch's t-test) over all complete
runs; the mean training times give a ratio. Only complete runs count, as in `speedrun stats`.
"""

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.stats

from speedrun.errors import SpeedrunError
from speedrun.stats import Run, data_note, format_p, joined_note, load_runs
from speedrun.words import plural

ALPHA = 0.05  # two-sided level at which a difference is called significant
POWER = 0.8  # the chance of reaching ALPHA that the seeds-needed estimate plans for
MAX_SEEDS = 1000  # beyond this the estimate says "more than"
# Below this, values differ by float arithmetic only: the logs write losses with 4 decimals, so logged losses (and
# their differences) that differ at all differ by about 1e-4, while 3.2810 - 3.2710 and 3.2750 - 3.2650, both
# 0.0100 as logged, differ by 4e-16
ROUNDING = 1e-9


def has_spread(values) -> bool:
    """Whether values read from logs (or their differences) vary by more than float rounding (ROUNDING): a t-test
    over rounding noise divides by it and calls any difference significant."""
    return len(values) > 1 and float(np.ptp(values)) > ROUNDING


@dataclass
class Side:
    name: str  # base | change
    runs: list[Run]  # complete runs only
    left_out: list[Run]  # logs that are not complete runs, with their status
    joined: list[Run] = field(default_factory=list)  # first parts of resumed runs: parts of those, not runs

    @property
    def logs(self) -> list[Run]:  # every log given for the side
        return self.runs + self.left_out + self.joined

    @property
    def losses(self) -> np.ndarray:
        return np.array([r.final_val_loss for r in self.runs], dtype=np.float64)

    def by_seed(self) -> dict[int, float]:
        """Mean final val loss per seed (repeats of a seed averaged); runs whose log names no seed, or one that is
        not a whole number (odd_seeds), are left out."""
        seeds: dict[int, list[float]] = {}
        for r in self.runs:
            if (seed := _seed(r)) is not None:
                seeds.setdefault(seed, []).append(r.final_val_loss)
        return {s: float(np.mean(v)) for s, v in sorted(seeds.items())}

    @property
    def odd_seeds(self) -> list[Run]:
        """Runs whose log names a seed that is not a whole number (an edited log's "one"): counted, never paired."""
        return [r for r in self.runs if r.log is not None and r.log.recipe.get("seed") is not None and _seed(r) is None]


def _seed(run: Run) -> int | None:
    """The run's seed where its log names a whole number (as training takes it), else None."""
    seed = run.log.recipe.get("seed") if run.log is not None else None
    if isinstance(seed, bool) or not isinstance(seed, int | float) or not float(seed).is_integer():
        return None
    return int(seed)


@dataclass
class Comparison:
    base: Side
    change: Side
    pairs: dict[int, tuple[float, float]]  # seed -> (base, change) mean final val loss
    paired: tuple[float, float] | None  # (t, two-sided p) over the pairs; None for fewer than 2 pairs
    welch: tuple[float, float] | None  # (t, two-sided p); None unless both sides have 2+ runs
    time_ratio: float  # mean training time, change / base (nan when the base's is 0)

    @property
    def paired_differences(self) -> list[float]:
        """Change minus base, seed by seed (the paired seeds' order)."""
        return [c - b for b, c in self.pairs.values()]

    @property
    def difference(self) -> float:
        """Change minus base: the mean over the seed pairs where there are 2+, else the difference of the means."""
        if self.paired is not None:
            return float(np.mean(self.paired_differences))
        return float(self.change.losses.mean() - self.base.losses.mean())


def seeds_for_power(diffs: list[float], power: float = POWER, alpha: float = ALPHA) -> int | None:
    """Seeds (pairs) a paired two-sided t-test needs to reach `alpha` with probability `power`, if the true mean and
    spread of the paired differences were the ones observed (the noncentral t); None when they cannot say (fewer
    than 2 differences, no spread, or a mean of 0), MAX_SEEDS + 1 when more than MAX_SEEDS. A planning figure: the
    observed effect of a few seeds is itself uncertain."""
    d = np.asarray(diffs, dtype=np.float64)
    if not has_spread(d) or d.mean() == 0:
        return None
    effect = abs(d.mean()) / d.std(ddof=1)
    for n in range(2, MAX_SEEDS + 1):
        crit = scipy.stats.t.ppf(1 - alpha / 2, n - 1)
        shift = effect * n**0.5
        if scipy.stats.nct.sf(crit, n - 1, shift) + scipy.stats.nct.cdf(-crit, n - 1, shift) >= power:
            return n
    return MAX_SEEDS + 1


def load_side(name: str, paths: list[str]) -> Side:
    runs = load_runs(paths)
    counted = [r for r in runs if r.counted]
    if all(r.status == "malformed" for r in runs):  # as `speedrun stats` says it: no log to count at all
        why = f"{runs[0].path}: {runs[0].reason}"
        raise SpeedrunError(f"{name}: " + (why if len(runs) == 1 else f"none of the {len(runs)} files is a run log "
                                           f"({why})"))
    if not counted:
        raise SpeedrunError(f"{name}: no complete run among {len(runs)} log(s) ({', '.join(paths)})")
    # runs of other recipe values (say 15 steps and 6) averaged as one seed would judge neither; other code, the
    # same values, pools with a note
    settings = {(r.group[0], r.group[2]): r for r in counted}
    if len(settings) > 1:
        one, other = list(settings.values())[:2]
        raise SpeedrunError(f"{name}: its runs have {len(settings)} settings (recipe or values differ: {one.path} "
                            f"and {other.path}); give each side runs of one recipe and values (`speedrun stats` on "
                            f"them shows the groups)")
    return Side(name, counted, [r for r in runs if not r.counted and r.continued_in is None],
                [r for r in runs if r.continued_in is not None])


def _run_id(path: Path) -> str | None:
    """The run id that ends a log's name (`20261205-012928_tiny_3f9c2a1e.txt`), or None for another name."""
    m = re.fullmatch(r".+_([0-9a-f]{8})", Path(path).name.split(".")[0])
    return m[1] if m else None


def compare(base_paths: list[str], change_paths: list[str]) -> Comparison:
    base, change = load_side("base", base_paths), load_side("change", change_paths)
    both = {r.path.resolve() for r in base.logs} & {r.path.resolve() for r in change.logs}
    if both:
        raise SpeedrunError(f"{sorted(both)[0]}: given as both base and change")
    # a copied log keeps its name, and the name ends in its run's id: one run on both sides would pair with itself
    # (a renamed copy keeps its text)
    ids = {_run_id(r.path): r.path for r in base.logs}
    texts = {r.log.text_hash: r.path for r in base.logs if r.log is not None}
    for r in change.logs:
        rid, text = _run_id(r.path), r.log.text_hash if r.log is not None else None
        if (rid is not None and rid in ids) or text in texts:
            other, what = (ids[rid], f"one run (id {rid})") if rid in ids else (texts[text], "one log's text")
            raise SpeedrunError(f"{r.path} and {other}: {what} on both sides, a copy; compare runs of the base against "
                                f"runs of the change")
    b, c = base.by_seed(), change.by_seed()
    pairs = {s: (b[s], c[s]) for s in b if s in c}
    paired = welch = None
    diffs = [v[1] - v[0] for v in pairs.values()]
    # no spread (equal differences, or equal losses on both sides; has_spread): t is a division by zero, or by
    # rounding noise, so no test; scipy's warning for nearly equal values is the report's to make, not a stray line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(pairs) >= 2 and has_spread(diffs):
            res = scipy.stats.ttest_rel([v[1] for v in pairs.values()], [v[0] for v in pairs.values()])
            paired = (float(res.statistic), float(res.pvalue))
        if len(base.runs) >= 2 and len(change.runs) >= 2 and (has_spread(base.losses) or has_spread(change.losses)):
            res = scipy.stats.ttest_ind(change.losses, base.losses, equal_var=False)
            welch = (float(res.statistic), float(res.pvalue))
    base_s, change_s = (float(np.mean([r.training_time_s for r in side.runs])) for side in (base, change))
    return Comparison(base, change, pairs, paired, welch, change_s / base_s if base_s > 0 else float("nan"))


def _side_line(side: Side) -> str:
    x = side.losses
    seeds = sorted(side.by_seed())
    commits = sorted({r.version for r in side.runs})
    spread = f", std {x.std(ddof=1):.4f}" if len(x) > 1 else ""
    return (f"{side.name}: {len(x)} complete run(s), seeds {', '.join(map(str, seeds)) or '(not logged)'}: final val "
            f"mean {x.mean():.4f}{spread}, min {x.min():.4f}, max {x.max():.4f}; training time mean "
            f"{np.mean([r.training_time_s for r in side.runs]):.1f} s; commit {', '.join(commits)}"
            + (f"; left out: {_left_out(side.left_out)}" if side.left_out else ""))


def _left_out(runs: list[Run]) -> str:
    """'2 incomplete, 1 not a run log, b.txt (a copy of a.txt)' (what `speedrun stats` lists one by one): a copy or
    a deterministic repeat is named with the log it repeats, being a complete run left out for that alone."""
    names = {"malformed": "not a run log", "complete": "complete without a final val"}  # the rest: failed, incomplete
    # a run log damaged or edited mid-way (runlog: 'line N: ...') is named with its line, being no stray file
    damaged = [r for r in runs if r.damaged]
    kinds = Counter(names.get(r.status, r.status) for r in runs if not r.copy_of and not r.damaged)
    repeats = [f"{r.path.name} ({'a copy of' if r.reason.startswith('a copy') else 'repeats'} {r.copy_of.name})"
               for r in runs if r.copy_of]
    return ", ".join([f"{n} {kind}" for kind, n in kinds.items()] + repeats
                     + [f"{r.path.name} (malformed: {r.reason})" for r in damaged])


def _enough_runs(cmp: Comparison) -> bool:
    """Both sides have the 2+ runs Welch's test needs (2+ seeds paired imply it): a missing test then means no
    spread, not too few runs."""
    return len(cmp.base.runs) >= 2 and len(cmp.change.runs) >= 2


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def verdict(cmp: Comparison) -> str:
    test = cmp.paired or cmp.welch
    if test is None and _enough_runs(cmp):  # then neither test had spread to divide by
        return ("VERDICT: no test: each side's final val losses are all the same (no spread): "
                f"change - base = {_signed(cmp.difference)}")
    if test is None:
        return ("VERDICT: too few runs for a test (need 2+ seeds run on both sides, or 2+ runs on each): "
                f"change - base = {_signed(cmp.difference)}")
    how = f"paired over {len(cmp.pairs)} seeds" if cmp.paired else "Welch, unpaired"
    direction = "lower" if cmp.difference < 0 else "higher"
    if test[1] < ALPHA:
        return (f"VERDICT: the change ends {direction} by {abs(cmp.difference):.4f} "
                f"(p = {format_p(test[1])}, {how}): significant at {ALPHA:g}")
    return (f"VERDICT: no significant difference: change - base = {_signed(cmp.difference)} "
            f"(p = {format_p(test[1])}, {how}; {ALPHA:g} not reached)")


def what_differs(base: Side, change: Side) -> str:
    """The line naming what the change changed: each recipe value (the seed aside) that differs between the sides,
    base -> change, and whether the code that ran differs. A side's runs share their recipe values (load_side)."""
    def values(side: Side) -> dict:
        recipe = next((r.log.recipe for r in side.runs if r.log is not None), {})
        # the name is no setting (a recipe file's is its file name): said apart, after the settings
        return {k: json.dumps(v, sort_keys=True) for k, v in recipe.items() if k not in ("seed", "description", "name")}
    b, c = values(base), values(change)
    names = [next((r.recipe for r in side.runs), "?") for side in (base, change)]
    recipes = f" (recipes {names[0]} -> {names[1]})" if names[0] != names[1] else ""
    # an upstream log's recipe is its folder's name and its steps: the rest is unknown there, not null
    upstream = any(r.log is not None and r.log.source == "upstream" for r in base.runs + change.runs)
    keys = set(b) & set(c) if upstream else set(b) | set(c)
    fields = [f"{k} ({b.get(k, 'null')} -> {c.get(k, 'null')})" for k in sorted(keys) if b.get(k) != c.get(k)]
    code = {r.group[1] for r in base.runs} != {r.group[1] for r in change.runs}
    if not fields and not code and upstream and recipes:  # its program is its own: only its steps are known
        return f"the change: the program{recipes}; an upstream log names only its steps, the same on both sides"
    if not fields and not code:
        return "the sides ran the same recipe values and code (the seeds aside)" + recipes
    return "the change: " + ", ".join(fields + (["the code (commit or source)"] if code else [])) + recipes


def format_comparison(cmp: Comparison) -> str:
    lines = [_side_line(cmp.base), _side_line(cmp.change), what_differs(cmp.base, cmp.change), "",
             "final val loss, change - base:"]
    if cmp.pairs:
        each = ", ".join(f"{s}: {_signed(c - b)}" for s, (b, c) in cmp.pairs.items())
        test = (f"; t = {cmp.paired[0]:.3f}, p = {format_p(cmp.paired[1])} (two-sided)" if cmp.paired
                else " (one seed: no test)" if len(cmp.pairs) == 1 else " (equal differences, no spread: no test)")
        lines.append(f"  paired by seed ({each}): mean {_signed(np.mean(cmp.paired_differences))}" + test)
    else:
        lines.append("  paired by seed: no seed ran on both sides")
    means = _signed(float(cmp.change.losses.mean() - cmp.base.losses.mean()))
    lines.append(f"  all runs (Welch): difference of means {means}"
                 + (f"; t = {cmp.welch[0]:.3f}, p = {format_p(cmp.welch[1])} (two-sided)" if cmp.welch
                    else " (each side's losses all equal, no spread: no test)" if _enough_runs(cmp)
                    else " (a side has one run: no test)"))
    if cmp.paired is not None and cmp.paired[1] >= ALPHA:
        n = seeds_for_power(cmp.paired_differences)
        if n is not None:
            need = f"more than {MAX_SEEDS}" if n > MAX_SEEDS else f"about {n}"
            lines.append(f"  seeds to tell this difference at this spread: {need} (p < {ALPHA:g} with probability "
                         f"{POWER:.0%}, paired, if the observed mean and spread were the true ones)")
    for side in (cmp.base, cmp.change):
        groups = {r.group for r in side.runs}
        if len(groups) > 1:  # pooled on purpose (a side is what the user named), but never silently
            lines.append(f"  note: the {side.name}'s runs ran {len(groups)} versions of the code (the same recipe "
                         "values), pooled here; `speedrun stats` on them shows each group")
    lines += [f"  note: the {side.name}'s {joined_note(r)}" for side in (cmp.base, cmp.change) for r in side.joined]
    for side in (cmp.base, cmp.change):
        if odd := side.odd_seeds:
            named = ", ".join(f"{r.path.name}: {json.dumps(r.log.recipe['seed'])}" for r in odd[:3])
            lines.append(f"  note: the {side.name}'s {plural(len(odd), 'log')} with a seed that is not a whole number "
                         f"({named}{', ...' if len(odd) > 3 else ''}): not paired, counted in the Welch test")
    if note := data_note(cmp.base.runs + cmp.change.runs, "the base and change runs"):
        lines.append("  " + note)
    ratio = "— (the base's logged training time is 0)" if np.isnan(cmp.time_ratio) else f"{cmp.time_ratio:.3f}x"
    lines += [f"training time, change / base: {ratio} (means of the training clocks; runs that shared a device "
              "with others ran slower)", "", verdict(cmp)]
    return "\n".join(lines)


def compare_report(base_paths: list[str], change_paths: list[str]) -> str:
    return format_comparison(compare(base_paths, change_paths))
