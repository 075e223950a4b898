#!/usr/bin/env bash
# Part 54. Cases, in the order given:
#   setup   install; unpack the carried shards into /tmp/corpus (benchmarks/gpu_session.sh setup); compiles nothing
#   launch  goal 3: gpu_session.sh launch (fast_1gpu, 30 steps) on main's final code (part 53's ReLU² change), first
#           after setup on a fresh machine, so on empty compile folders
#   suite   gpu_session.sh suite (tests/gpu in two halves + the slow CPU tier) on main's final commit
#   pair    goal 1's pair on main's final code: fast_1gpu (seed 7), then record21_1gpu, each alone, 1-GPU track
#           (needs .data/park carried in a call before on the same machine)
#   step    benchmarks/step_time.py for fast_1gpu at steps 900 and 999 (goal 2, in the call of record21_1gpu's run)
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
git log -1 --format=%h 2>/dev/null; md5sum speedrun/kernels/relu2_fp8.py speedrun/model/fp8.py | cut -c1-12,34-
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
  esac
done
echo "done at $(( $(date +%s) - T0 ))s"
