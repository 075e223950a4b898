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
# The trees: calls A-B and C (the GPU suite) ran main's; call D the tree of branch candidates-s49 (362ea2c), call F
# that of candidates-s49f (8d873bd, where head_loss.py has --programs).
# Call D (BASE=.data/base49b, main with the transpose kernel): the loss kernel's pass-1 exponential on the FMA
# units. Cases kmicro (head_loss.py --kernel-only in main's tree, then in this one), ktests (the loss kernel's and the
# head op's GPU tests), base, step (this tree's step, no launch override), suite (benchmarks/gpu_session.sh suite).
# Its rule, fixed before call D: the kernel alone at most 0.95x main's at its default launch (plain and MTP), the
# tests pass, the step at most 0.995x main's at 999 and at most 1.0x at 900.
# Call F (BASE=.data/base49b): the loss kernel's programs each taking every P-th row (P a few per SM), so that a row
# stays in L2 between the two passes. Cases lmicro (the launches; the fastest exact one picked), base, cand (the step
# with the pick), suite (run on this tree, whose default launch is still one program a row). Rule, fixed before
# call F: the picked launch at most 0.9x the one-program-a-row launch (plain and MTP summed), the GPU suite passes,
# the step at most 0.995x main's at 999 and at most 1.0x at 900.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
BASE=${BASE:-.data/base49}
md5sum speedrun/model/fp8.py speedrun/kernels/transpose.py speedrun/kernels/softcap_ce.py $BASE/speedrun/kernels/softcap_ce.py | cut -c1-12,34-
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
      grep -E "^fastest" $OUT/micro.txt | sed -E 's/.*ours ([0-9]+) x ([0-9]+), ([0-9]+) warps.*/{"transpose": {"block_m": \1, "block_n": \2, "num_warps": \3}}/' > /tmp/pick49 ;;
    tests)
      timeout 200 python3 -m pytest -q tests/gpu/test_gpu.py -k "transposed_copy or fused_head_loss" > $OUT/tests.txt 2>&1
      echo "tests rc $? at $(( $(date +%s) - T0 ))s"; tail -n 1 $OUT/tests.txt ;;
    base)
      (cd $BASE && PYTHONPATH=$PWD python3 -c "import speedrun; print('base tree:', speedrun.__file__)" &&
       PYTHONPATH=$PWD timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP) > $OUT/step_${n}_base.txt 2>&1
      echo "base rc $? at $(( $(date +%s) - T0 ))s"; grep "base tree" $OUT/step_${n}_base.txt; show $OUT/step_${n}_base.txt ;;
    cand)
      PICK=$(cat /tmp/pick49 2>/dev/null || echo '{}')
      timeout ${LIM:-150} python3 $D/step_with_launch.py "$PICK" $STEP > $OUT/step_${n}_cand.txt 2>&1
      echo "cand rc $? at $(( $(date +%s) - T0 ))s"; grep " launch: " $OUT/step_${n}_cand.txt | cut -c1-120
      show $OUT/step_${n}_cand.txt ;;
    kmicro)
      (cd $BASE && PYTHONPATH=$PWD python3 benchmarks/head_loss.py --kernel-only) > $OUT/kmicro_${n}_base.txt 2>&1
      python3 benchmarks/head_loss.py --kernel-only > $OUT/kmicro_${n}_cand.txt 2>&1
      echo "kmicro at $(( $(date +%s) - T0 ))s"; for w in base cand; do echo " $w"; grep "loss kernel" $OUT/kmicro_${n}_$w.txt; done ;;
    ktests)
      timeout 200 python3 -m pytest -q tests/gpu/test_gpu.py -k "softcap or fused_head_loss or mtp" > $OUT/ktests.txt 2>&1
      echo "ktests rc $? at $(( $(date +%s) - T0 ))s"; tail -n 1 $OUT/ktests.txt ;;
    step)
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_cand.txt 2>&1
      echo "step rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_cand.txt ;;
    lmicro)  # call F: the loss kernel's launches, programs per SM among them; the fastest goes to /tmp/pick49
      python3 benchmarks/head_loss.py --programs --json $OUT/programs.json > $OUT/lmicro.txt 2>&1
      echo "lmicro rc $? at $(( $(date +%s) - T0 ))s"; grep -E "loss kernel|fastest" $OUT/lmicro.txt | cut -c1-110
      grep -E "^fastest" $OUT/lmicro.txt | sed -E 's/.*ours (row|[0-9]+) per SM, block ([0-9]+), ([0-9]+) warps.*/{"softcap_ce": {"programs_per_sm": \1, "block": \2, "num_warps": \3}}/; s/"programs_per_sm": row/"programs_per_sm": null/' > /tmp/pick49
      cat /tmp/pick49 ;;
    suite)  # tests/gpu in its two halves, as benchmarks/gpu_session.sh suite runs them (without its slow CPU tests)
      export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
      python3 -m pytest -q tests/gpu/test_gpu.py > "$OUT/gpu_a.txt" 2>&1 & a=$!
      python3 -m pytest -q $(ls tests/gpu/test_*.py | grep -v '/test_gpu.py$') > "$OUT/gpu_b.txt" 2>&1
      wait $a; echo "suite at $(( $(date +%s) - T0 ))s"; tail -qn 1 "$OUT/gpu_a.txt" "$OUT/gpu_b.txt"; xz -9f "$OUT"/gpu_?.txt ;;
  esac
done
