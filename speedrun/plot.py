"""`speedrun plot`: val loss against training time and against step, one line per run; beyond MAX_RUN_LINES runs,
one line per (recipe, commit) group: the mean curve with a min-max band. Unfinished runs are dotted and labelled so
they are not read as results. Drawn on a bare Figure with the Agg canvas: no pyplot state.
"""

import json
import re
import shutil
import sys
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from speedrun.errors import SpeedrunError
from speedrun.files import check_writable_folder, write_atomic
from speedrun.stats import DEFAULT_TARGET, Run, group_label, joined_val, label_settings, listed_as, load_runs
from speedrun.words import plural

MAX_RUN_LINES = 8
TARGET_NEAR = 0.5  # the target is drawn when within this fraction of the losses' span from them


def _points(runs: list[Run]) -> np.ndarray:
    v = np.concatenate([np.array(joined_val(r)[0], dtype=np.float64).reshape(-1, 3) for r in runs])
    return np.column_stack([v[:, 0], v[:, 2] / 1000, v[:, 1]])


def _run_label(run: Run, settings: str, show_seed: bool = False) -> str:
    """Recipe, its changed fields (the seed where runs differ only by it), the file's time stamp, and where the run
    ended: the final loss is what a reader compares, and is hard to read off. An unfinished run shows its last val
    loss after step 0, never step 0's."""
    stem = run.path.name.removesuffix(".xz").removesuffix(".txt")
    parts = stem.split("_")
    if run.log.source == "upstream":  # upstream names its logs by uuid: the first block tells them apart
        stamp = stem.split("-")[0] if re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", stem) else stem
    else:
        stamp = f"{parts[0]} {parts[-1]}" if len(parts) > 2 else stem  # time stamp and the log's own id
    if show_seed:
        settings = f"{settings} seed={run.log.recipe.get('seed', '?')}".strip()
    name = f"{run.recipe}{' ' + settings if settings else ''} ({stamp})"
    if not joined_val(run)[1]:  # its line starts at the resume: the steps before are in a log not given
        name += f" (resumed at step {run.log.resumed_at}; its first part's log not given)"
    if run.final_val_loss is not None:
        return f"{name}: final {run.final_val_loss:.4f}"
    if run.last_val is None:
        return f"{name} ({run.status}): no val loss after step 0"
    return f"{name} ({run.status}): last {run.last_val[1]:.4f} at step {run.last_val[0]}/{run.steps_planned}"


def _series(runs: list[Run], settings: dict) -> list[dict]:
    """One dict per line to draw: label, style, and x/y for both panels (+ band for groups). settings: per group,
    from label_settings."""
    if len(runs) <= MAX_RUN_LINES:
        seeds = {json.dumps(r.log.recipe.get("seed"), sort_keys=True) for r in runs}  # an edited log's: a list
        show_seed = len(seeds) > 1 and len({r.group for r in runs}) < len(runs)  # repeats of one setting: which seed
        return [dict(zip(("steps", "secs", "loss"), _points([r]).T), label=_run_label(r, settings[r.group], show_seed),
                     done=r.counted, planned=r.steps_planned, band=None) for r in runs]
    groups: dict[tuple, list[Run]] = {}
    for r in runs:  # unfinished runs get their own group: they must not drag a finished group's mean
        groups.setdefault((*r.group, r.counted), []).append(r)
    out = []
    # finished groups first, so the dotted unfinished lines are drawn on top and stay visible
    for (*_, done), members in sorted(groups.items(), key=lambda kv: (not kv[0][-1], kv[0][:-1])):
        points = _points(members)
        steps, which = np.unique(points[:, 0], return_inverse=True)
        at_step = [points[which == i] for i in range(len(steps))]
        losses = [p[:, 2] for p in at_step]
        mean = np.array([l.mean() for l in losses])
        label = (f"{group_label(members, settings[members[0].group])}: {plural(len(members), 'run')}"
                 + (f", mean final {mean[-1]:.4f}" if done else " (incomplete/failed)"))
        out.append(dict(label=label, done=done, planned=max(r.steps_planned for r in members), steps=steps,
                        secs=np.array([p[:, 1].mean() for p in at_step]), loss=mean,
                        band=(np.array([l.min() for l in losses]), np.array([l.max() for l in losses]))))
    return out


def _ylim(series: list[dict], target: float) -> tuple[float, float, bool]:
    """(bottom, top, draw the target). Clip away the first steps (val loss ~10.8 at step 0) so the end of training,
    where runs differ, is readable: the top is the highest loss seen from 20% of the planned steps on. The target
    is drawn (and kept in view) only when it lies near the losses: a far one would squash every curve flat."""
    late = []
    for s in series:
        late_steps = s["steps"] >= 0.2 * s["planned"]
        # a run stopped early shows its last point, unless that is step 0's (~10.8: it would undo the cut)
        late += list(s["loss"][late_steps]) or ([s["loss"][-1]] if s["steps"][-1] > 0 else [])
        if s["band"] is not None:
            late += list(s["band"][1][late_steps])
    allv = np.concatenate([s["loss"] for s in series] + [s["band"][0] for s in series if s["band"] is not None])
    # a diverged run's NaN or inf points are left out of the axis (matplotlib draws a gap there)
    allv, late = allv[np.isfinite(allv)], [v for v in late if np.isfinite(v)]
    if not allv.size:
        return target - 0.5, target + 0.5, True
    lo, hi = float(allv.min()), float(max(late, default=allv.max()))
    near = TARGET_NEAR * max(hi - lo, 0.05)
    show = lo - near <= target <= hi + near
    if show:
        lo, hi = min(lo, target), max(hi, target)
    span = max(hi - lo, 0.05)
    return lo - 0.06 * span, hi + 0.06 * span, show


def _check_out(out: str) -> tuple[Path, str]:
    """(path, image format) of a writable output, before any work: a bad --out is one line, not a traceback after
    the drawing, and nothing is written. Missing parent folders are made."""
    out_path = Path(out)
    if out_path.is_dir():
        raise SpeedrunError(f"--out {out}: is a folder; name the image file")
    fmt, known = out_path.suffix.lstrip(".").lower(), FigureCanvasAgg.get_supported_filetypes()
    if fmt not in known:
        kinds = ", ".join(f".{k}" for k in sorted(known))
        raise SpeedrunError(f"--out {out}: " + (f"unsupported image type '.{fmt}'" if fmt else "no suffix to tell the "
                            "image type") + f"; name the file with one of {kinds}")
    if fmt == "pgf" and shutil.which(tex := matplotlib.rcParams["pgf.texsystem"]) is None:
        raise SpeedrunError(f"--out {out}: matplotlib writes .pgf through {tex}, which is not installed here; "
                            f"name a .pdf or .svg file")
    check_writable_folder(out_path.parent, "--out", shown=out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path, fmt


def _why_skipped(run: Run) -> str:
    if run.status == "malformed" or run.copy_of:
        return run.reason
    if run.continued_in is not None:
        whole = listed_as(run)  # a copy's line is not drawn: the run it repeats is
        return f"its run goes on in {whole.path}, " + (f"not drawn either: {whole.reason}" if whole.copy_of else
                                                       "drawn as one line")
    return f"no val loss after step 0 ({run.status})" if joined_val(run)[0] else f"no val loss recorded ({run.status})"


def plot_logs(paths: list[str], out: str, target: float = DEFAULT_TARGET) -> Figure:
    out_path, fmt = _check_out(out)
    runs = []
    for r in load_runs(paths):
        # step 0's loss alone is the untrained model's: a line of it says nothing about the run
        trained = r.status != "malformed" and any(s > 0 for s, _, _ in joined_val(r)[0])
        # a resumed run's line starts with its first part's points: that part is not drawn again on its own
        if not trained or r.copy_of or r.continued_in is not None:
            print(f"speedrun: skipped {r.path}: {_why_skipped(r)}", file=sys.stderr)
        else:
            runs.append(r)
    if not runs:
        raise SpeedrunError(f"no val loss points after step 0 to plot in {', '.join(paths)}")
    settings, shared = label_settings(runs)
    if len(settings) == 1 and len(runs) > 1:  # one setting run several times (seeds): its fields said once, above
        [(group, shared)] = settings.items()
        settings = {group: ""}
    series = _series(runs, settings)
    fig = Figure(figsize=(13, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_t, ax_s = fig.subplots(1, 2, sharey=True)
    for i, s in enumerate(series):
        style = dict(color=f"C{i % 10}", lw=1.8, ls="-" if s["done"] else ":", marker="o", ms=3.5)
        for ax, x in ((ax_t, s["secs"]), (ax_s, s["steps"])):
            ax.plot(x, s["loss"], label=s["label"], **style)
            if s["band"] is not None:
                ax.fill_between(x, *s["band"], color=style["color"], alpha=0.2, lw=0)
    ylo, yhi, show_target = _ylim(series, target)
    for ax, xlabel, title in ((ax_t, "training time (s)", "val loss vs training time"),
                              (ax_s, "step", "val loss vs step")):
        if show_target:
            ax.axhline(target, color="0.2", ls="--", lw=1.2, label=f"target {target:g}")
            # named on the line too, not only in the legend
            ax.annotate(f"target {target:g}", xy=(0.01, target), xycoords=("axes fraction", "data"),
                        xytext=(0, 3), textcoords="offset points", fontsize=9, color="0.2", va="bottom")
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=10, labelleft=True)  # sharey hides the right one's; both panels are read alone
        # a margin on the right: the runs end there, and their last points (the final losses) must not be cut
        ax.set_xlim(0, 1.04 * max(float(s["secs" if ax is ax_t else "steps"].max()) for s in series) or 1)
        ax.set_xlabel(xlabel, fontsize=11)
        ax.set_title(title, fontsize=12)
    ax_t.set_ylim(ylo, yhi)
    ax_t.set_ylabel("validation loss", fontsize=11)
    n_runs = len(runs)
    what = plural(n_runs, "run") + (f" in {plural(len(series), 'group')}: mean line, min–max band"
                                    if n_runs > MAX_RUN_LINES else "")
    title = f"Validation loss, {what}."
    # the highest point, where the y axis cuts it off (the untrained model's loss at step 0, mostly)
    top = max(((float(y), int(x)) for s in series for x, y in zip(s["steps"], s["loss"]) if np.isfinite(y)),
              default=None)
    if top is not None and top[0] > yhi:
        title += f" Y axis cut above: the early losses (up to {top[0]:.1f}, at step {top[1]}) are off the top."
    if shared:  # left out of every legend entry
        title += f"\nEvery run: {shared}"
    if not show_target:  # said, so a reader does not look for it
        # a group's line is its mean: the lowest run's value is its band's bottom
        best = min(float(np.nanmin(s["loss"] if s["band"] is None else s["band"][0])) for s in series)
        title += (f"\nTarget {target:g} not drawn: far {'below' if target < best else 'above'} these losses "
                  f"(the lowest run's val loss: {best:.4f}).")
    fig.suptitle(title, fontsize=12)
    handles, labels = ax_s.get_legend_handles_labels()
    ncol = max(1, min(3, len(labels), 170 // max(map(len, labels))))  # long labels (recipe changes): fewer columns
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    write_atomic(out_path, lambda f: fig.savefig(f, format=fmt, dpi=110))
    return fig
