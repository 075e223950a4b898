"""Time-to-loss experiments: train several recipe variants on the same data and tabulate, for each, the final val
loss, the training time, the training time at which val first reached the target, ms/step and peak memory.

    python benchmarks/time_to_target.py --target 3.41 --out $OUT/logs \
        --set train_files=/tmp/corpus/corpus_train_00000[0-4].bin --set val_files=/tmp/corpus/corpus_val_000000.bin \
        --set val_tokens=2097152 \
        base:record21_1gpu  fast:fast_1gpu  fast-nonorm:fast_1gpu,normuon_beta2=0  short:fast_1gpu,steps=600

Each variant is LABEL:RECIPE[,key=value...]; the shared --set overrides apply to all, before each variant's own.
--parallel N runs N variants at once on the same GPU (to compare losses in less wall time: their step times are
then not comparable and the table says so); the default runs them one after another, each alone on the device.
--seeds N runs every variant with seeds 0..N-1, seed by seed (labels LABEL-s0 ...); --first-seed K starts at K
(seeds K..K+N-1), e.g. to test a recipe on seeds it was not tuned on.
A variant that fails is reported as failed and the others go on. The table is printed last and written as JSON,
also when SIGTERM (e.g. from `timeout`) ends the script: the running variants are stopped, and reported with
what their logs hold so far.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from speedrun.cli import val_loss_target
from speedrun.runlog import LogError, parse_log
from speedrun.stats import time_to_target


def parse_variant(text: str) -> tuple[str, str, list[str]]:
    label, _, rest = text.partition(":")
    if not rest:
        raise SystemExit(f"variant {text!r}: expected LABEL:RECIPE[,key=value...]")
    parts, depth, start = [], 0, 0
    for i, c in enumerate(rest):  # commas inside [...] (at any depth) belong to a list value
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            parts.append(rest[start:i])
            start = i + 1
    recipe, *sets = [*parts, rest[start:]]
    return label, recipe, sets


def sets_seed(sets: list[str]) -> bool:
    """Whether these KEY=VALUE overrides set the seed."""
    return any(s.split("=")[0].strip() == "seed" for s in sets)


def with_seeds(variants: list[tuple[str, str, list[str]]], seeds: int,
               first: int = 0) -> list[tuple[str, str, list[str]]]:
    """Each variant once per seed first..first+seeds-1 (labels LABEL-sK), seed by seed, so that a drifting machine
    touches every variant alike; `speedrun stats` pools runs that differ only in their seed."""
    if seeds == 1 and first == 0:
        return variants
    if given := [label for label, _, sets in variants if sets_seed(sets)]:
        raise SystemExit(f"--seeds {seeds} --first-seed {first}: variant {given[0]} sets its own seed")
    return [(f"{label}-s{k}", recipe, [*sets, f"seed={k}"]) for k in range(first, first + seeds)
            for label, recipe, sets in variants]


def logs_in(folder: Path) -> set[Path]:
    return {p for p in folder.glob("*.txt") if p.name != "console.txt"}


def launch(label: str, recipe: str, sets: list[str], common: list[str], out: Path, print_every: int):
    """(process, console file, the logs already in the variant's folder): an --out used before holds a variant's
    earlier logs, which are never this launch's result."""
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    earlier = logs_in(folder)
    # each variant its log and checkpoints in a folder of its own, found by its label
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", recipe, "--log-dir", str(folder),
           "--checkpoint-dir", str(folder / "checkpoints"), "--print-every", str(print_every)]
    for s in common + sets:
        cmd += ["--set", s]
    console = open(folder / "console.txt", "w")
    print(f"[{time.strftime('%H:%M:%S')}] start {label}: {' '.join(cmd[3:])}", flush=True)
    return subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT), console, earlier


def summarize(label: str, recipe: str, sets: list[str], folder: Path, rc: int, target: float, concurrent: bool,
              earlier: frozenset[Path] | set[Path] = frozenset()) -> dict:
    logs = sorted(logs_in(folder) - set(earlier))  # this launch's log: a failed one leaves none, not an old one
    row = dict(label=label, recipe=recipe, sets=sets, rc=rc, concurrent=concurrent)
    if not logs:
        tail = (folder / "console.txt").read_text(errors="replace").strip().splitlines()[-1:] if (folder / "console.txt").exists() else []
        return {**row, "status": "no log", "error": tail[0] if tail else ""}
    try:
        log = parse_log(logs[-1])
    except LogError as e:
        return {**row, "status": "malformed", "error": str(e)}
    hit = time_to_target(log, target)
    steps = log.train_steps[-1][0] if log.train_steps else 0
    train_ms = log.val[-1][2] if log.val else None
    return {**row, "status": log.status, "error": log.failure, "log": str(logs[-1]), "steps": steps,
            "planned_steps": log.steps, "final_val": log.final_val_loss, "train_s": train_ms / 1000 if train_ms else None,
            "ms_per_step": train_ms / steps if train_ms and steps else None,
            "to_target_s": hit[1] if hit else None, "to_target_step": hit[0] if hit else None,
            "peak_alloc_mib": log.peak_allocated_mib, "val": [(s, v) for s, v, _ in log.val]}


def table(rows: list[dict], target: float) -> str:
    head = f"| variant | recipe + overrides | steps | final val | train s | ms/step | to {target:g}: s @ step | peak alloc MiB | status |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        f = lambda k, fmt: format(r[k], fmt) if r.get(k) is not None else "—"
        to = f"{r['to_target_s']:.1f} @ {r['to_target_step']}" if r.get("to_target_s") is not None else "not reached"
        ms = f("ms_per_step", ".1f") + (" (concurrent)" if r["concurrent"] else "")
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        lines.append(f"| {r['label']} | {' '.join([r['recipe'], *r['sets']])} | {r.get('steps', '—')} | "
                     f"{f('final_val', '.4f')} | {f('train_s', '.1f')} | {ms} | {to} | {f('peak_alloc_mib', 'd')} | {status} |")
    return "\n".join(lines)


class Stopped(Exception):
    """SIGTERM arrived: stop the running variants and report what there is."""


def _raise_stopped(signum, frame):
    # `timeout` signals this process and then its process group: a second SIGTERM must not interrupt the stopping
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="LABEL:RECIPE[,key=value...]")
    ap.add_argument("--target", type=val_loss_target, default=3.41)
    ap.add_argument("--out", default="logs/time_to_target")
    ap.add_argument("--set", action="append", default=[], dest="common", metavar="KEY=VALUE")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--print-every", type=int, default=250)
    ap.add_argument("--seeds", type=int, default=1, help="run every variant with seeds 0..N-1 (repeats for stats)")
    ap.add_argument("--first-seed", type=int, default=0, help="with --seeds N: seeds K..K+N-1 instead")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    if args.first_seed < 0:
        ap.error("--first-seed must be >= 0")
    seeded = args.seeds > 1 or args.first_seed > 0
    if seeded and sets_seed(args.common):
        ap.error(f"--seeds {args.seeds} --first-seed {args.first_seed} sets each run's seed: drop --set seed=...")
    out = Path(args.out)
    variants = with_seeds([parse_variant(v) for v in args.variants], args.seeds, args.first_seed)
    concurrent = args.parallel > 1
    rows, queue, running = [], list(variants), []

    def finish(item) -> None:
        label, recipe, sets, proc, console, earlier = item
        console.close()
        running.remove(item)
        row = summarize(label, recipe, sets, out / label, proc.returncode, args.target, concurrent, earlier)
        rows.append(row)
        print(f"[{time.strftime('%H:%M:%S')}] done {label}: rc {proc.returncode}, final val {row.get('final_val')}, "
              f"to target {row.get('to_target_s')}", flush=True)

    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        while queue or running:
            while queue and len(running) < args.parallel:
                label, recipe, sets = queue.pop(0)
                proc, console, earlier = launch(label, recipe, sets, args.common, out, args.print_every)
                running.append((label, recipe, sets, proc, console, earlier))
            time.sleep(2)
            for item in [i for i in running if i[3].poll() is not None]:
                finish(item)
    except Stopped:
        print(f"[{time.strftime('%H:%M:%S')}] SIGTERM: stopping {len(running)} running variant(s); "
              f"not started: {', '.join(v[0] for v in queue) or 'none'}", flush=True)
        for item in list(running):
            item[3].terminate()  # the trainer finishes its step, closes its log as incomplete, and exits
        for item in list(running):
            try:
                item[3].wait(timeout=60)
            except subprocess.TimeoutExpired:
                item[3].kill()
                item[3].wait()
            finish(item)
    finally:
        signal.signal(signal.SIGTERM, previous)
    order = {v[0]: i for i, v in enumerate(variants)}
    rows.sort(key=lambda r: order[r["label"]])
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows, args.target))
    return 0 if all(r["status"] == "complete" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
