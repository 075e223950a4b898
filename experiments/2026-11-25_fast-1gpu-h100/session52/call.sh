#!/usr/bin/env bash
# Part 52: Muon's three compiled passes (part 51, branch candidates-p51-muon) with one rank's three passes as one
# compiled graph a group (branch candidates-p52-muon), to pay a graph's fixed compile cost once, not three times.
# The trees travel as archives (speedrun, benchmarks, tests): .data/p51, .data/p52; main's is the checkout.
# Cases, in the order given:
#   setup       install; unpack the carried shards into /tmp/corpus (benchmarks/gpu_session.sh setup)
#   launch52    gpu_session.sh launch in p52's tree, empty compile folders of its own: first on a fresh machine (goal 3)
#   launchmain  the same in main's tree, on empty compile folders of its own
#   mcold       benchmarks/muon_step.py for main, p51 and p52, each on empty compile folders of its own
#   mtests52    p52's tests/gpu/test_muon_gpu.py
#   stepmain    benchmarks/step_time.py at 900 and 999, main (the compile folders of its launch)
#   step52      the same for p52
#   ttt52       fast_1gpu seed 7 on the 1-GPU track with p52, val at step 0 and the end
#   suite52     gpu_session.sh suite in p52's tree;   suite: the same in main's tree
# Rule, fixed before the first call: p52 goes to main if its GPU tests pass, its launch (first in the call, fresh
# machine) takes at most 100 s, its step at most 0.995x main's at both 900 and 999 in the same call, and its ttt run
# ends at val <= 3.41. Else p51 and p52 are both removed (their row in the experiments README).
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
for d in p51 p52; do [ -d .data/$d ] && for x in demo gpt2; do ln -sfn $ROOT/speedrun/data/$x .data/$d/speedrun/data/$x; done; done
md5sum speedrun/optim/muon.py .data/p5*/speedrun/optim/muon.py 2>/dev/null | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
tree() { [ $1 = main ] && echo $ROOT || echo $ROOT/.data/p${1#p}; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; echo "setup rc $? at $(( $(date +%s) - T0 ))s"
      grep -E "corpus:|torch" $OUT/setup.txt | cut -c1-200 ;;
    launch52|launchmain)
      t=${c#launch}; mkdir -p $OUT/l$t
      (cd $(tree $t) && PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$t${S:-} TRITON_CACHE_DIR=/tmp/tri_$t${S:-} OUT=$OUT/l$t \
        bash benchmarks/gpu_session.sh launch > $OUT/l$t/summary.txt 2>&1); echo "$c rc $? at $(( $(date +%s) - T0 ))s"
      grep -E "warm-up|launch to first|async_compile|fw_compiler|bw_compiler" $OUT/l$t/summary.txt | cut -c1-200 ;;
    mcold)
      for t in main p51 p52; do
        PYTHONPATH=$(tree $t) TORCHINDUCTOR_CACHE_DIR=/tmp/ind_m$t TRITON_CACHE_DIR=/tmp/tri_m$t timeout 150 \
          python3 benchmarks/muon_step.py --json $OUT/muon_$t.json > $OUT/muon_$t.txt 2>&1
        echo "mcold $t rc $? at $(( $(date +%s) - T0 ))s: $(tail -n 1 $OUT/muon_$t.txt | sed 's/.*entries;[^|]*| //' | cut -c1-200)"
      done ;;
    mtests52)
      (cd .data/p52 && PYTHONPATH=$PWD timeout 240 python3 -m pytest -q -s tests/gpu/test_muon_gpu.py) > $OUT/mtests52.txt 2>&1
      echo "mtests52 rc $? at $(( $(date +%s) - T0 ))s"; grep -E "relative|Error|assert" $OUT/mtests52.txt | head -n 8 | cut -c1-160
      tail -n 1 $OUT/mtests52.txt ;;
    stepmain|step52)
      t=${c#step}
      (cd $(tree $t) && PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$t TRITON_CACHE_DIR=/tmp/tri_$t \
        timeout ${LIM:-170} python3 $ROOT/benchmarks/step_time.py $STEP) > $OUT/step_${n}_$t.txt 2>&1
      echo "$c rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_$t.txt ;;
    ttt52)
      (cd .data/p52 && PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=/tmp/ind_52 TRITON_CACHE_DIR=/tmp/tri_52 OUT=$OUT \
        LIMIT=${TLIM:-240} bash benchmarks/gpu_session.sh ttt p52 --target 3.41 fast:fast_1gpu,seed=7) > $OUT/ttt.txt 2>&1
      echo "ttt52 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 6 $OUT/ttt.txt | cut -c1-250 ;;
    suite52)
      (cd .data/p52 && PYTHONPATH=$PWD OUT=$OUT bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3); echo "suite52 at $(( $(date +%s) - T0 ))s" ;;
    suite)
      PYTHONPATH=$ROOT bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3; echo "suite at $(( $(date +%s) - T0 ))s" ;;
  esac
done
echo "done at $(( $(date +%s) - T0 ))s"
