"""Stalls in a run's timed steps: the steps that took well over their neighbours, from run logs.

    python benchmarks/step_stalls.py LOG [LOG ...] [--over 8]

A step stalls when its time exceeds the median of the 21 steps around it by more than --over ms (the median follows
the attention window's growth, a stall does not move it). Each log gets one line: steps, median step, the stalls'
count, their total excess, what they cost the run net of the step after each (the clock reads at step boundaries on
the host: a host-side pause delays one reading while the GPU works through its queue, and the next step then
reads that much shorter), and the steps where they fell; with three or more, their typical spacing.
In part 27 of the experiments the 13 stalls of 20-45 ms in a `fast_1gpu` run (every 82 steps) summed to 371 ms, and
to 15 ms net: the next step made each one up, so they cost the run almost nothing.
Logs of runs that shared the GPU are noisy: read only runs timed alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from speedrun.runlog import LogError, parse_log


def step_durations(train_steps: list[tuple[int, float, float | None]]) -> list[tuple[int, float]]:
    """(step, ms that step took) from the log's cumulative (step, train_time_ms, loss) rows, consecutive steps only
    (the clock reads 0 before step 1)."""
    out = [(1, train_steps[0][1])] if train_steps and train_steps[0][0] == 1 else []
    for (s0, t0, _), (s1, t1, _) in zip(train_steps, train_steps[1:]):
        if s1 == s0 + 1:
            out.append((s1, t1 - t0))
    return out


def stalls(durations: list[tuple[int, float]], over_ms: float,
           half_window: int = 10) -> list[tuple[int, float, float]]:
    """(step, ms over the local median, ms over net of the next step) for each step more than over_ms above the
    median of its neighbourhood. The net figure adds the next step's own excess, negative when it made up time."""
    ms = [d for _, d in durations]
    excess = [d - statistics.median(ms[max(0, i - half_window): i + half_window + 1]) for i, d in enumerate(ms)]
    found = []
    for i, (step, _) in enumerate(durations):
        if excess[i] > over_ms:
            after = excess[i + 1] if i + 1 < len(ms) and durations[i + 1][0] == step + 1 else 0.0
            found.append((step, excess[i], excess[i] + after))
    return found


def describe(name: str, durations: list[tuple[int, float]], found: list[tuple[int, float, float]]) -> str:
    if not durations:
        return f"{name}: no consecutive timed steps in the log"
    median = statistics.median(d for _, d in durations)
    line = (f"{name}: {len(durations)} steps, median {median:.1f} ms; {len(found)} stalls, "
            f"{sum(e for _, e, _ in found):.0f} ms over in all, {sum(n for _, _, n in found):.0f} ms net of the "
            "next steps")
    if found:
        line += " at steps " + ", ".join(str(s) for s, _, _ in found[:20]) + (" ..." if len(found) > 20 else "")
    if len(found) >= 3:
        line += f"; every {statistics.median(b[0] - a[0] for a, b in zip(found, found[1:])):.0f} steps"
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+", help="run logs (speedrun's format)")
    ap.add_argument("--over", type=float, default=8.0, help="ms over the local median that counts as a stall")
    args = ap.parse_args(argv)
    rc = 0
    for path in args.logs:
        try:
            log = parse_log(path)
        except LogError as e:
            print(f"{path}: {e}", file=sys.stderr)
            rc = 1
            continue
        durations = step_durations(log.train_steps)
        print(describe(str(path), durations, stalls(durations, args.over)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
