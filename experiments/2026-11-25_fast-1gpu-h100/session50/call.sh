#!/usr/bin/env bash
# Part 50: the loss kernel holding each row on chip whole (speedrun/kernels/softcap_ce.py, one read of the logits),
# and branch candidates-s50's prefetch in the two-pass kernel. Cases, in the order given:
#   kmicro   benchmarks/head_loss.py --kernel-only in this tree: the two-pass kernel (main's), the whole-row kernel at
#            several warps, at 49,152 x 50,304 and x 12,288, plain and with two extra targets
#   pkmicro  the same script in candidates-s50's tree (carried in .data/s50pre): its prefetching two-pass kernel
#   ktests   the GPU tests of the loss kernel and of the fused head op
#   base     main's step (the tree of a5f7f36, carried in .data/base50), schedule steps 900 and 999
#   step     this tree's step (the whole-row kernel at its default launch)
#   suite    tests/gpu in its two halves
#   clocks   this tree's step (steps 900, 999) with nvidia-smi reading the SM clock, power and clock-event reasons every
#            100 ms (read only; nothing set), summarised by clocks_summary.py: is the step held back by the power cap?
# Rules, fixed before call A:
#   whole row: stays if the GPU tests pass, the kernel at its default launch takes at most 0.85x the two-pass kernel's
#     time at 50,304 (plain and MTP) and no more at 12,288, and the step is at most 0.995x main's at 999 and at most
#     1.0x at 900 (mean of each side's medians over the call's runs);
#   prefetch: stays if its kernel takes at most 0.95x main's two-pass kernel (plain and MTP), and then it goes to a
#     step measurement of its own; else it is removed (its row in the experiments README).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
BASE=${BASE:-.data/base50}
md5sum speedrun/kernels/softcap_ce.py $BASE/speedrun/kernels/softcap_ce.py .data/s50pre/speedrun/kernels/softcap_ce.py | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    kmicro)
      python3 benchmarks/head_loss.py --kernel-only --json $OUT/kmicro.json > $OUT/kmicro.txt 2>&1
      echo "kmicro rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^loss kernel|Error" $OUT/kmicro.txt | sed 's/loss kernel //' | cut -c1-150 ;;
    pkmicro)
      (cd .data/s50pre && PYTHONPATH=$PWD python3 benchmarks/head_loss.py --kernel-only) > $OUT/pkmicro.txt 2>&1
      echo "pkmicro rc $? at $(( $(date +%s) - T0 ))s"; grep -E "loss kernel|Error" $OUT/pkmicro.txt | cut -c1-110 ;;
    ktests)
      timeout 240 python3 -m pytest -q tests/gpu/test_gpu.py -k "softcap or fused_head_loss or mtp" > $OUT/ktests.txt 2>&1
      echo "ktests rc $? at $(( $(date +%s) - T0 ))s"; tail -n 1 $OUT/ktests.txt ;;
    base)
      (cd $BASE && PYTHONPATH=$PWD python3 -c "import speedrun; print('base tree:', speedrun.__file__)" &&
       PYTHONPATH=$PWD timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP) > $OUT/step_${n}_base.txt 2>&1
      echo "base rc $? at $(( $(date +%s) - T0 ))s"; grep "base tree" $OUT/step_${n}_base.txt; show $OUT/step_${n}_base.txt ;;
    step)
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_cand.txt 2>&1
      echo "step rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_cand.txt ;;
    suite)
      export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
      python3 -m pytest -q tests/gpu/test_gpu.py > "$OUT/gpu_a.txt" 2>&1 & a=$!
      python3 -m pytest -q $(ls tests/gpu/test_*.py | grep -v '/test_gpu.py$') > "$OUT/gpu_b.txt" 2>&1
      wait $a; echo "suite at $(( $(date +%s) - T0 ))s"; tail -qn 1 "$OUT/gpu_a.txt" "$OUT/gpu_b.txt"; xz -9f "$OUT"/gpu_?.txt ;;
    clocks)
      Q=timestamp,clocks.sm,clocks.max.sm,power.draw,enforced.power.limit,temperature.gpu,clocks_event_reasons.sw_power_cap,clocks_event_reasons.hw_slowdown,clocks_event_reasons.sw_thermal_slowdown
      nvidia-smi --query-gpu=$Q --format=csv,noheader,nounits -lms 100 > $OUT/smi.csv 2> $OUT/smi.err & smi=$!
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_clocks.txt 2>&1
      echo "clocks step rc $? at $(( $(date +%s) - T0 ))s"; kill $smi; show $OUT/step_${n}_clocks.txt
      head -c 300 $OUT/smi.err; python3 experiments/2026-11-25_fast-1gpu-h100/session50/clocks_summary.py $OUT/smi.csv ;;
  esac
done
