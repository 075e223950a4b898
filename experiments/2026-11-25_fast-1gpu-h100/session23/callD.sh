#!/usr/bin/env bash
# Part 23, call D (no carry: the machine of calls B and C, all five shards unpacked there): goal 1 in one call, each
# run alone on the GPU: `fast_1gpu` (seed 7) and `record21_1gpu` to val 3.41 on the 1-GPU track. `fast` trains 1100
# steps if all three of call C's 1100-step runs ended at or under 3.400 (a margin of 0.01 to the target, fixed before
# call C ran), else its 1200.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here (machine changed since call C)"; exit 3; fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
steps=$(python3 - <<'PY'
import json
try:
    runs = json.load(open("/tmp/ttt/c/results.json"))
    vals = [r["final_val"] for r in runs if r.get("status") == "complete" and r.get("steps") == 1100]
    print(1100 if len(vals) == 3 and max(vals) <= 3.400 else 1200)
except Exception:
    print(1200)
PY
)
echo "fast trains $steps steps"
LIMIT=560 bash benchmarks/gpu_session.sh ttt d --target 3.41 \
  fast:fast_1gpu,seed=7,steps=$steps record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
