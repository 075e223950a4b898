#!/usr/bin/env bash
# Part 51: Muon's step as three compiled passes (branch candidates-p51-muon): the momentum pass (both lerps, the
# transposes, the stacking and the cast to bf16 in one kernel), Polar Express with its sums in cuBLAS's baddbmm
# epilogues, and the update pass (NorMuon's scaling and every parameter's update). Main's Muon: foreach lerps, a float32
# stacking copy, Polar Express with its products written out, NorMuon compiled, then one eager add a parameter.
# Cases, in the order given:
#   setup    install; unpack the carried shards into /tmp/corpus (benchmarks/gpu_session.sh setup)
#   mtests   tests/gpu/test_muon_gpu.py (this tree): the epilogues against the products apart; compiled against eager
#   mbase    benchmarks/muon_step.py (this tree's script) on main's package (the tree of c35fc9e in .data/base51)
#   mcand    the same on this tree's package
#   base     main's step (.data/base51), schedule steps 900 and 999
#   step     this tree's step
#   ttt      fast_1gpu (seed 7) on the 1-GPU track, val at step 0 and the end (gpu_session.sh ttt)
#   pair     goal 1's pair on main's final code, as part 46's call C: fast_1gpu (seed 7), then record21_1gpu, each alone,
#            on the 1-GPU track, val at step 0 and the end; on a fresh machine (the call before it only unpacked shards),
#            so fast_1gpu's launch is also goal 3's (empty compile folders)
#   launch   gpu_session.sh launch: fast_1gpu's launch (goal 3), first in the call on a fresh machine (empty folders)
#   mopts    benchmarks/muon_step.py on this tree, each run on empty compile folders of its own (then some again, warm):
#            Inductor's defaults, combo_kernels (independent kernels fused side by side), max_pointwise_cat_inputs=64
#            (the stacking as one kernel), both; and main's Muon cold. Which build compiles fastest, runs fastest?
#   suite    gpu_session.sh suite in this tree: tests/gpu in two halves, the CPU tests marked slow beside them
#   bsuite   the same in main's tree (.data/base51)
# Rule, fixed before call A: the candidate goes on to a training run (ttt) and to main if its GPU tests pass, Muon's
# step alone takes at most 0.8x main's, and the training step at most 0.995x main's at both 900 and 999 (mean of each
# side's medians over the call's runs); it stays on main if that run ends at val <= 3.41. Else it is removed (its row in
# the experiments README).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
BASE=${BASE:-.data/base51}
md5sum speedrun/optim/muon.py $BASE/speedrun/optim/muon.py 2>/dev/null | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; echo "setup rc $? at $(( $(date +%s) - T0 ))s"
      grep -E "corpus:|torch" $OUT/setup.txt | cut -c1-200 ;;
    mtests)
      timeout 240 python3 -m pytest -q -s tests/gpu/test_muon_gpu.py > $OUT/mtests.txt 2>&1
      echo "mtests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "relative|Error|assert" $OUT/mtests.txt | head -n 8 | cut -c1-160
      tail -n 1 $OUT/mtests.txt ;;
    mbase)
      PYTHONPATH=$PWD/$BASE timeout 200 python3 benchmarks/muon_step.py --json $OUT/muon_base_$n.json > $OUT/muon_base_$n.txt 2>&1
      echo "mbase rc $? at $(( $(date +%s) - T0 ))s"; tail -n 2 $OUT/muon_base_$n.txt | cut -c1-260 ;;
    mcand)
      timeout 200 python3 benchmarks/muon_step.py --json $OUT/muon_cand_$n.json > $OUT/muon_cand_$n.txt 2>&1
      echo "mcand rc $? at $(( $(date +%s) - T0 ))s"; tail -n 2 $OUT/muon_cand_$n.txt | cut -c1-260 ;;
    base)
      (cd $BASE && PYTHONPATH=$PWD python3 -c "import speedrun; print('base tree:', speedrun.__file__)" &&
       PYTHONPATH=$PWD timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP) > $OUT/step_${n}_base.txt 2>&1
      echo "base rc $? at $(( $(date +%s) - T0 ))s"; grep "base tree" $OUT/step_${n}_base.txt; show $OUT/step_${n}_base.txt ;;
    step)
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_cand.txt 2>&1
      echo "step rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_cand.txt ;;
    ttt)
      LIMIT=${TLIM:-300} bash benchmarks/gpu_session.sh ttt p51 --target 3.41 fast:fast_1gpu,seed=7 > $OUT/ttt.txt 2>&1
      echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -n 6 $OUT/ttt.txt | cut -c1-250 ;;
    pair)
      ls -d /tmp/torchinductor_* ~/.triton 2>/dev/null | head -3; echo "(compile folders above, if any)"
      LIMIT=${TLIM:-560} bash benchmarks/gpu_session.sh ttt g51 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/pair.txt 2>&1
      echo "pair rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/g51 2>/dev/null | head
      tail -n 6 $OUT/pair.txt | cut -c1-250 ;;
    launch)
      bash benchmarks/gpu_session.sh launch > $OUT/launch_summary.txt 2>&1; echo "launch rc $? at $(( $(date +%s) - T0 ))s"
      head -n 14 $OUT/launch_summary.txt | cut -c1-220 ;;
    mopts)
      k=0
      for spec in "cold:" "warm:" "cold:combo_kernels=True" "cold:max_pointwise_cat_inputs=64" \
                  "cold:combo_kernels=True max_pointwise_cat_inputs=64" "warm:combo_kernels=True max_pointwise_cat_inputs=64" "base:"; do
        k=$((k + 1)); mode=${spec%%:*}; opts=${spec#*:}; args=""; for o in $opts; do args="$args --inductor $o"; done
        [ $mode = warm ] || { export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_m$k TRITON_CACHE_DIR=/tmp/tri_m$k; }
        pp=""; [ $mode = base ] && pp=$PWD/$BASE
        PYTHONPATH=$pp timeout 150 python3 benchmarks/muon_step.py $args --json $OUT/mopts_$k.json > $OUT/mopts_$k.txt 2>&1
        echo "mopts $k ($spec) rc $? at $(( $(date +%s) - T0 ))s: $(tail -n 1 $OUT/mopts_$k.txt | sed 's/.*entries;[^|]*| //' | cut -c1-200)"
      done; unset TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR ;;
    suite)
      bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3; echo "suite at $(( $(date +%s) - T0 ))s" ;;
    bsuite)
      (cd $BASE && PYTHONPATH=$PWD OUT=$OUT bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3); echo "bsuite at $(( $(date +%s) - T0 ))s" ;;
  esac
done
echo "done at $(( $(date +%s) - T0 ))s"
