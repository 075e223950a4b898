"""Part 32's rules for the two launch candidates, fixed before the calls:
  pw       Inductor compiles the model's element-wise kernels with one launch configuration (branch candidates-s31);
  regions  blocks compiled as nested regions shared by kind (branch candidates-s31-regions).
Each goes to main if its warm-up is at least 8 s shorter than main's in call A and in call B, its step at schedule
steps 900 and 999 at most 1.005x main's, and its peak allocated memory at step 999 at most 2 GiB over main's (call A).
`decide.py A OUT` reads call A's files and keeps the figures in /tmp/s32_A.json (and OUT); `decide.py B OUT` adds
call B's launches and writes the decision (none, pw, regions or both) to /tmp/s32_decision."""
import json
import pathlib
import re
import sys

MIN_WARMUP_GAIN_S, MAX_STEP_RATIO, MAX_EXTRA_PEAK_GIB, AT = 8.0, 1.005, 2.0, ("900", "999")
CANDIDATES = ("pw", "regions")
call, out = sys.argv[1], pathlib.Path(sys.argv[2])


def launch(name):
    """(warm-up s, TorchDynamo tracing s, launch s) from gpu_session.sh's printout; NaN where missing."""
    path = out / f"launch_{name}.txt"
    text = path.read_text() if path.exists() else ""
    get = lambda pat: float(m.group(1)) if (m := re.search(pat, text, re.M)) else float("nan")
    return {"warmup_s": get(r"^warm-up: .* in ([\d.]+)s"), "tracing_s": get(r"^bytecode_tracing\s+([\d.]+)"),
            "launch_s": get(r"^launch to first timed step: ([\d.]+)s")}


def step(name):
    """{schedule step: (median ms, peak allocated GiB)} from step_time.py's JSON; {} where missing."""
    try:
        rows = json.loads((out / f"step_{name}.json").read_text())["rows"]
        return {str(r["at_step"]): (r["median_ms"], r["peak_alloc_gib"]) for r in rows}
    except (OSError, KeyError, ValueError):
        return {}


if call == "A":
    figures = {"launch": {b: launch(b) for b in ("main", *CANDIDATES)},
               "step": {b: step(b) for b in ("main", *CANDIDATES)}}
    text = json.dumps(figures, indent=1)
    pathlib.Path("/tmp/s32_A.json").write_text(text)
    (out / "s32_A.json").write_text(text)
else:
    figures = json.loads(pathlib.Path("/tmp/s32_A.json").read_text())
    figures["launch"].update({f"{b}2": launch(f"{b}2") for b in ("main", *CANDIDATES)})

print("| build | call | launch s | warm-up s | tracing s |\n|---|---|---:|---:|---:|")
for key, f in figures["launch"].items():
    print(f"| {key.rstrip('2')} | {'B' if key.endswith('2') else 'A'} | {f['launch_s']:.1f} | {f['warmup_s']:.1f} | "
          f"{f['tracing_s']:.2f} |")
steps = figures["step"]
for at in AT:
    cells = [f"{b} {steps[b][at][0]:.2f} ms / {steps[b][at][1]:.2f} GiB" for b in ("main", *CANDIDATES) if at in steps[b]]
    print(f"step at {at}: " + ", ".join(cells))
if call == "B":
    passed = []
    for b in CANDIDATES:
        L, sm, sb = figures["launch"], steps["main"], steps[b]
        gains = [L["main"]["warmup_s"] - L[b]["warmup_s"], L["main2"]["warmup_s"] - L[f"{b}2"]["warmup_s"]]
        step_ok = all(at in sm and at in sb and sb[at][0] <= MAX_STEP_RATIO * sm[at][0] for at in AT)
        peak_ok = "999" in sm and "999" in sb and sb["999"][1] <= sm["999"][1] + MAX_EXTRA_PEAK_GIB
        ok = all(g >= MIN_WARMUP_GAIN_S for g in gains) and step_ok and peak_ok  # NaN compares False: fails
        print(f"{b}: warm-up gains {gains[0]:.1f} s (call A), {gains[1]:.1f} s (call B); step within "
              f"{MAX_STEP_RATIO}x: {step_ok}; peak within {MAX_EXTRA_PEAK_GIB} GiB: {peak_ok}; "
              f"{'to main' if ok else 'removed'}")
        passed += [b] * ok
    decision = "both" if len(passed) == 2 else passed[0] if passed else "none"
    pathlib.Path("/tmp/s32_decision").write_text(decision)
    print(f"decision: {decision}")
