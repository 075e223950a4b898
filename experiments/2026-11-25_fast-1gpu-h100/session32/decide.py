"""Part 32's rule for the candidate (Inductor's element-wise kernels with one launch configuration), fixed before the
calls: to main if its warm-up is at least 8 s shorter than main's in call A and in call B, and its step at schedule
steps 900 and 999 is at most 1.005x main's (call A). `decide.py A OUT` reads call A's files and keeps the figures in
/tmp/s32_A.json (and OUT); `decide.py B OUT` reads call B's launches and writes the decision to /tmp/s32_decision."""
import json
import pathlib
import re
import sys

MIN_WARMUP_GAIN_S, MAX_STEP_RATIO, AT = 8.0, 1.005, ("900", "999")
call, out = sys.argv[1], pathlib.Path(sys.argv[2])


def launch(name):
    """(warm-up s, TorchDynamo tracing s, launch s) from gpu_session.sh's printout; NaN where missing."""
    path = out / f"launch_{name}.txt"
    text = path.read_text() if path.exists() else ""
    get = lambda pat: float(m.group(1)) if (m := re.search(pat, text, re.M)) else float("nan")
    return {"warmup_s": get(r"^warm-up: .* in ([\d.]+)s"), "tracing_s": get(r"^bytecode_tracing\s+([\d.]+)"),
            "launch_s": get(r"^launch to first timed step: ([\d.]+)s")}


def step_ms(name):
    try:
        rows = json.loads((out / f"step_{name}.json").read_text())["rows"]
        return {str(r["at_step"]): r["median_ms"] for r in rows}
    except (OSError, KeyError, ValueError):
        return {}


if call == "A":
    figures = {"main": launch("main"), "pw": launch("pw"), "step_main": step_ms("main"), "step_pw": step_ms("pw")}
    text = json.dumps(figures, indent=1)
    pathlib.Path("/tmp/s32_A.json").write_text(text)
    (out / "s32_A.json").write_text(text)
else:
    figures = json.loads(pathlib.Path("/tmp/s32_A.json").read_text())
    figures.update(main2=launch("main2"), pw2=launch("pw2"))

print("| build | call | launch s | warm-up s | tracing s |\n|---|---|---:|---:|---:|")
for key, name, c in (("main", "main", "A"), ("pw", "candidate", "A"), ("pw2", "candidate", "B"), ("main2", "main", "B")):
    if key in figures:
        f = figures[key]
        print(f"| {name} | {c} | {f['launch_s']:.1f} | {f['warmup_s']:.1f} | {f['tracing_s']:.2f} |")
sm, sp = figures["step_main"], figures["step_pw"]
for at in AT:
    if at in sm and at in sp:
        print(f"step at {at}: main {sm[at]:.2f} ms, candidate {sp[at]:.2f} ms ({sp[at] / sm[at]:.3f}x)")
if call == "B":
    gains = [figures["main"]["warmup_s"] - figures["pw"]["warmup_s"],
             figures["main2"]["warmup_s"] - figures["pw2"]["warmup_s"]]
    steps_ok = all(at in sm and at in sp and sp[at] <= MAX_STEP_RATIO * sm[at] for at in AT)
    ok = all(g >= MIN_WARMUP_GAIN_S for g in gains) and steps_ok  # NaN compares False: a missing figure fails
    decision = "to_main" if ok else "removed"
    pathlib.Path("/tmp/s32_decision").write_text(decision)
    print(f"warm-up gains {gains[0]:.1f} s (call A), {gains[1]:.1f} s (call B); steps within {MAX_STEP_RATIO}x: "
          f"{steps_ok}; decision: {decision}")
