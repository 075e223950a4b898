#!/usr/bin/env bash
# Part 54. Cases, in the order given:
#   setup   install; unpack the carried shards into /tmp/corpus (benchmarks/gpu_session.sh setup); compiles nothing
#   launch  goal 3: gpu_session.sh launch (fast_1gpu, 30 steps) on main's final code (part 53's ReLU² change), first
#           after setup on a fresh machine, so on empty compile folders
#   suite   gpu_session.sh suite (tests/gpu in two halves + the slow CPU tier) on main's final commit
#   pair    goal 1's pair on main's final code: fast_1gpu (seed 7), then record21_1gpu, each alone, 1-GPU track
#           (needs .data/park carried in a call before on the same machine)
#   step    benchmarks/step_time.py for fast_1gpu at steps 900 and 999 (goal 2, in the call of record21_1gpu's run)
# The candidate (branch candidates-p54-ns-diag, its tree as .data/p54): Polar Express's X = a X + B X computed as
# (a I + B) X, the diagonal add in place: cuBLAS's baddbmm first copies its addend X into its output (the step's 20
# Memcpy DtoD, 0.73 ms a step in call 3's profile at 999), a plain bmm does not.
#   ktests54  the candidate's tests/gpu/test_muon_gpu.py
#   mbench    benchmarks/muon_step.py, main's tree then the candidate's
#   stepbase  step_time.py at 900 and 999 on main's tree;   step54: the same on the candidate's
#   ttt54     fast_1gpu seed 7 on the 1-GPU track with the candidate, val at step 0 and the end
# Rule, fixed before the first call on the candidate: it goes to main if its GPU tests pass, its step is at most 0.995x
# main's at both 900 and 999 (mean of each side's medians over the call's runs) with no higher peak, and its ttt run
# ends at val <= 3.41. Else it is removed (its row in the experiments README).
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
git log -1 --format=%h 2>/dev/null; md5sum speedrun/kernels/relu2_fp8.py speedrun/model/fp8.py | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
for x in demo gpt2; do [ -d .data/p54 ] && ln -sfn $ROOT/speedrun/data/$x .data/p54/speedrun/data/$x; done
[ -d .data/p54 ] && md5sum .data/p54/speedrun/optim/muon.py | cut -c1-12,34-
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; echo "setup rc $? at $(( $(date +%s) - T0 ))s"
      grep -E "corpus:|torch" $OUT/setup.txt | cut -c1-200 ;;
    launch)
      ls -d /tmp/torchinductor_* ~/.triton 2>/dev/null | head -3; echo "(compile folders above, if any)"
      bash benchmarks/gpu_session.sh launch 2>&1 | grep -vE "^(GPU|NVIDIA|torch )" | cut -c1-200
      echo "launch at $(( $(date +%s) - T0 ))s" ;;
    suite)
      bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3; echo "suite at $(( $(date +%s) - T0 ))s" ;;
    pair)
      k=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
      [ "$k" = 6 ] || { echo "$k of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
      LIMIT=${TLIM:-520} bash benchmarks/gpu_session.sh ttt g54 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/pair.txt 2>&1
      echo "pair rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/g54 2>/dev/null | head
      tail -n 5 $OUT/pair.txt | cut -c1-250 ;;
    step)
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_main.txt 2>&1
      echo "step rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_main.txt ;;
    ktests54)
      (cd .data/p54 && PYTHONPATH=$PWD timeout 200 python3 -m pytest -q -s tests/gpu/test_muon_gpu.py) > $OUT/ktests54.txt 2>&1
      echo "ktests54 rc $? at $(( $(date +%s) - T0 ))s"; grep -E "relative|float64|Error|assert" $OUT/ktests54.txt | head -n 8 | cut -c1-200
      tail -n 1 $OUT/ktests54.txt ;;
    mbench)
      timeout 100 python3 benchmarks/muon_step.py > $OUT/mbench_main.txt 2>&1; echo "mbench main rc $?"; tail -n 2 $OUT/mbench_main.txt | cut -c1-250
      (cd .data/p54 && PYTHONPATH=$PWD timeout 100 python3 $ROOT/benchmarks/muon_step.py) > $OUT/mbench_54.txt 2>&1
      echo "mbench 54 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 2 $OUT/mbench_54.txt | cut -c1-250 ;;
    stepbase|step54)
      d=$ROOT; [ $c = step54 ] && d=$ROOT/.data/p54
      (cd $d && PYTHONPATH=$PWD timeout ${LIM:-170} python3 $ROOT/benchmarks/step_time.py $STEP) > $OUT/step_${n}_$c.txt 2>&1
      echo "$c rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_$c.txt; grep -E "^ +(900|999) " $OUT/step_${n}_$c.txt | cut -c70- ;;
    ttt54)
      k=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
      [ "$k" = 6 ] || { echo "$k of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
      (cd .data/p54 && PYTHONPATH=$PWD OUT=$OUT LIMIT=${TLIM:-240} bash benchmarks/gpu_session.sh ttt p54 --target 3.41 \
        fast:fast_1gpu,seed=7) > $OUT/ttt54.txt 2>&1
      echo "ttt54 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 3 $OUT/ttt54.txt | cut -c1-250 ;;
  esac
done
echo "done at $(( $(date +%s) - T0 ))s"
