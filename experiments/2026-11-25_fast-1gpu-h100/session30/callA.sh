#!/usr/bin/env bash
# Part 30, call A: a fresh machine, main's tree, carry [".data/corpus", ".data/cand"] (.data/corpus: train shards 0-2,
# .data/park: 3, 4 and val, so that tree + carry stay under 64 MiB). The archives, made before the call:
#   s30_break.tgz   = branch s30-break   (main + the graph break after the trunk + the warm-up fix)
#   s30_nobreak.tgz = branch s30-nobreak (main + the warm-up fix: the full head compiled only when the last step uses it)
# 1. Goal 3: the launch of main's `fast_1gpu` (the sampled softmax: two head graphs, each with the whole model) on the
#    machine's empty compile folders; then main's step at schedule steps 1000 (sampled) and 1100 (full).
# 2. The same with the graph break (the head alone compiles twice), on compile folders of its own. The second launch
#    finds Python's files in the page cache: compare the warm-up seconds, not the totals.
# 3. The break's build with sampled_head_end_frac=1.0 at step 1099 (the final window; goal 2 asks for <= 70 ms).
# Rule, fixed here: the break goes to main if its launch's warm-up is at least 15 s shorter and its step at both
# schedule steps at most 1.01x main's. The choice goes to /tmp/s30_decision for calls B-D (the same machine).
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[0-2].bin"
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_main_summary.txt 2>&1; cut -c1-200 $OUT/launch_main_summary.txt | head -8
mv $OUT/launch.txt.xz $OUT/launch_main.txt.xz; echo "main launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 1000 --at-step 1100 \
  --json $OUT/step_main.json > $OUT/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
tar xzf .data/cand/s30_break.tgz || { echo "NO ARCHIVE"; exit 3; }
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cand TRITON_CACHE_DIR=/tmp/triton_cand
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_cand_summary.txt 2>&1; cut -c1-200 $OUT/launch_cand_summary.txt | head -8
mv $OUT/launch.txt.xz $OUT/launch_cand.txt.xz; echo "cand launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 1000 --at-step 1100 \
  --json $OUT/step_cand.json > $OUT/step_cand.txt 2>&1; echo "cand step rc $? at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --set sampled_head_end_frac=1.0 --steps 30 --shards "$S" \
  --at-step 1099 --json $OUT/step_end1.json > $OUT/step_end1.txt 2>&1; echo "end1 step rc $? at $(( $(date +%s) - T0 ))s"
xz -9f $OUT/step_main.txt $OUT/step_cand.txt $OUT/step_end1.txt
python3 - "$OUT" <<'PY'
import json, re, sys, pathlib
out = pathlib.Path(sys.argv[1])
def warm(v):
    m = re.search(r"^warm-up: .* in ([\d.]+)s", (out / f"launch_{v}_summary.txt").read_text(), re.M)
    return float(m.group(1)) if m else float("nan")
def ms(v):
    try: return {r["at_step"]: r["median_ms"] for r in json.loads((out / f"step_{v}.json").read_text())["rows"]}
    except Exception: return {}
w, s = {v: warm(v) for v in ("main", "cand")}, {v: ms(v) for v in ("main", "cand", "end1")}
print("warm-up s:", w, "step ms:", s)
ok = (w["main"] - w["cand"] >= 15 and all(k in s["cand"] and k in s["main"] and s["cand"][k] <= 1.01 * s["main"][k]
                                          for k in (1000, 1100)))
pathlib.Path("/tmp/s30_decision").write_text("break" if ok else "nobreak")
print("decision:", "break" if ok else "nobreak")
PY
