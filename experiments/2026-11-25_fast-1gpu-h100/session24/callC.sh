#!/usr/bin/env bash
# Part 24, call C (no carry: the machine of calls A and B, all five shards unpacked there): goal 1 in one call, each
# run alone on the GPU: `fast_1gpu` (seed 7) and `record21_1gpu` to val 3.41 on the 1-GPU track. fast_1gpu runs with
# fp8_qkv=true if call A sent it on and call B's three runs all ended at or under 3.400 with a mean at or under
# 3.3948 (session 23's 3.3918 + 0.003), a rule fixed before calls A and B ran; else as on main.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here (machine changed since call B)"; exit 3; fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
extra=$(python3 - <<'PY'
import json
try:
    assert open("/tmp/s24/decision").read() == "qkv"
    runs = json.load(open("/tmp/ttt/b/results.json"))
    vals = [r["final_val"] for r in runs if r.get("status") == "complete"]
    ok = len(vals) == 3 and max(vals) <= 3.400 and sum(vals) / 3 <= 3.3948
    print(",fp8_qkv=true" if ok else "")
except Exception:
    print("")
PY
)
echo "fast_1gpu overrides: seed=7$extra"
LIMIT=560 bash benchmarks/gpu_session.sh ttt c --target 3.41 fast:fast_1gpu,seed=7$extra record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
