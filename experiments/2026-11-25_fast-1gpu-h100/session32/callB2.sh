#!/usr/bin/env bash
# Part 32, call B2 (a fresh machine; carry [".data/park"]: train shards 3-4 and val, unpacked to /tmp/corpus for call
# C2). Call A's machine went back before call B, and call A already decided both launch candidates (decide.py's rule:
# pw's step 1.005x / 1.0125x main's at steps 900 / 999, over 1.005x; regions stopped in TorchDynamo), so call B is
# not run. Instead: the step of `fast_1gpu` at its final window (step 999, full softmax) against the same recipe with
# weighted negatives (commit 40133b6) and the sampled head to the end (`wn`), which has no full-softmax step.
# Rule for wn, fixed before calls B2 and C2: into `fast` if (1) its step at 999 is at most 0.95x main's here, (2) at
# seed 8 it ends at most 0.003 over main's seed 8 in call C2, (3) its three seeds (7, 8, 13) all end at or under 3.41
# with `speedrun stats --target 3.41` p < 0.01, and (4) its peak memory is no higher than main's. Else it is removed.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-200
S="/tmp/corpus/corpus_train_00000[34].bin"
WN=(--set sampled_head_weighted_negatives=true --set sampled_head_end_frac=1.0)
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 999 --json $OUT/step_main.json \
  > $OUT/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu "${WN[@]}" --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_wn.json > $OUT/step_wn.txt 2>&1; echo "wn step rc $? at $(( $(date +%s) - T0 ))s"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {n: {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]} for n in ("main", "wn")}
print("| build | step | median ms | peak alloc GiB |\n|---|---:|---:|---:|")
for n, by in rows.items():
    for at, r in sorted(by.items()):
        print(f"| {n} | {at} | {r['median_ms']:.2f} | {r['peak_alloc_gib']:.2f} |")
m, w = rows["main"][999]["median_ms"], rows["wn"][999]["median_ms"]
print(f"wn / main at step 999: {w / m:.3f} (rule: <= 0.95): {'pass' if w <= 0.95 * m else 'FAIL'}")
PY
