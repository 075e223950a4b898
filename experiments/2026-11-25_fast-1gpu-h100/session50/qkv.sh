#!/usr/bin/env bash
# Part 50, call E (branch candidates-s51): the attention's QKV matmul in FP8 (recipe field fp8_qkv), its output's
# gradient cast at last step's maximum by our kernel in both layouts in one pass. Both builds from this tree:
# fast_1gpu as it is, and with --set fp8_qkv=true, alternating, with --power. Rule, fixed before the call: fp8_qkv
# goes on to a training check (val at 1000 steps, three seeds) if its GPU tests pass and its step is at most 0.985x
# the plain build's at both 900 and 999 (mean of each side's medians); else it is removed.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
md5sum speedrun/model/fp8.py speedrun/kernels/relu2_fp8.py speedrun/model/gpt.py | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999 --power"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-60
  grep -E "^ +(900|999) " $1 | cut -c1-90; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
timeout 100 python3 -m pytest -q tests/gpu/test_fp8_qkv_gpu.py -s > $OUT/qkv_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "relative errors|FP8 cast kernel" $OUT/qkv_tests.txt | cut -c1-150; tail -n 1 $OUT/qkv_tests.txt
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    qkv)  timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP --set fp8_qkv=true > $OUT/step_${n}_qkv.txt 2>&1
          echo "qkv rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_qkv.txt ;;
    base) timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_base.txt 2>&1
          echo "base rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_base.txt ;;
  esac
done
