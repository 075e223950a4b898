#!/usr/bin/env bash
# Part 49, calls A and B: the FP8 head's e5m2 gradient copied transposed by our Triton kernel
# (speedrun/kernels/transpose.py) instead of Inductor's copy. Cases, in the order given:
#   micro  benchmarks/head_loss.py --transpose (Inductor's, torch's and our copies at 49,152 x 50,304 and x 12,288);
#          the fastest exact launch goes to /tmp/pick49 for the cases after it (on this machine)
#   tests  the GPU tests of the kernel and of the fused head + loss op
#   base   main's step (the tree of HEAD before the change, carried in .data/base49), schedule steps 900 and 999
#   cand   the change's step with the picked launch
# The rule, fixed before call A: the kernel stays if every copy is exact, the GPU tests pass, and the change's step is
# at most 0.995x main's at step 999 and at most 1.0x at step 900 (medians, mean over the call's runs of each).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
md5sum speedrun/model/fp8.py speedrun/kernels/transpose.py .data/base49/speedrun/model/fp8.py | cut -c1-12,34-
D=experiments/2026-11-25_fast-1gpu-h100/session49
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    micro)
      python3 benchmarks/head_loss.py --transpose --json $OUT/transpose.json > $OUT/micro.txt 2>&1
      echo "micro rc $? at $(( $(date +%s) - T0 ))s"; grep -E "transposed copy|fastest" $OUT/micro.txt | cut -c1-110
      grep -E "^fastest" $OUT/micro.txt | sed -E 's/.*ours ([0-9]+) x ([0-9]+), ([0-9]+) warps.*/\1 \2 \3/' > /tmp/pick49 ;;
    tests)
      timeout 200 python3 -m pytest -q tests/gpu/test_gpu.py -k "transposed_copy or fused_head_loss" > $OUT/tests.txt 2>&1
      echo "tests rc $? at $(( $(date +%s) - T0 ))s"; tail -n 1 $OUT/tests.txt ;;
    base)
      (cd .data/base49 && PYTHONPATH=$PWD python3 -c "import speedrun; print('base tree:', speedrun.__file__)" &&
       PYTHONPATH=$PWD timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP) > $OUT/step_${n}_base.txt 2>&1
      echo "base rc $? at $(( $(date +%s) - T0 ))s"; grep "base tree" $OUT/step_${n}_base.txt; show $OUT/step_${n}_base.txt ;;
    cand)
      PICK=$(cat /tmp/pick49 2>/dev/null || echo "128 128 4")
      timeout ${LIM:-150} python3 $D/step_with_launch.py $PICK $STEP > $OUT/step_${n}_cand.txt 2>&1
      echo "cand rc $? at $(( $(date +%s) - T0 ))s"; grep "transpose launch" $OUT/step_${n}_cand.txt | cut -c1-100
      show $OUT/step_${n}_cand.txt ;;
  esac
done
