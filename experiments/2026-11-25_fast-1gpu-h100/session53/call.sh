#!/usr/bin/env bash
# Part 53. Cases, in the order given:
#   setup   install; unpack the carried shards into /tmp/corpus (benchmarks/gpu_session.sh setup); compiles nothing
#   pair    goal 1's pair on main's final code (the compiled Muon of part 52): fast_1gpu (seed 7), then record21_1gpu,
#           each alone, on the 1-GPU track, val at step 0 and the end. On a fresh machine whose only call before
#           was `setup`, so fast_1gpu's launch is also goal 3's (empty default compile folders)
#   step    benchmarks/step_time.py for fast_1gpu at steps 900 and 999 (goal 2, in the call of record21_1gpu's run)
# The candidate (branch candidates-p53-relu2, its tree as .data/p53): the ReLU² gradient kernel also writes the
# transposed ReLU² copy for c_proj's weight gradient, from the p it reads anyway, instead of a kernel of its own that
# reads the c_fc output p (N x 3072 bf16) once more: one launch and about 0.3 GB of reads less a layer.
#   kbench    benchmarks/relu2_fp8.py at the default launch configuration, main's and the candidate's
#   ktests53  the candidate's GPU tests of the kernels and the FP8 MLP (tests/gpu/test_gpu.py -k "relu2 or delayed")
#   stepbase  step_time.py at 900 and 999 on main's tree;   step53: the same on the candidate's
#   ttt53     fast_1gpu seed 7 on the 1-GPU track with the candidate, val at step 0 and the end
#   suite53   gpu_session.sh suite in the candidate's tree
# Rule, fixed before the first call on the candidate: it goes to main if its GPU tests pass, its step is at most 0.995x
# main's at both 900 and 999 (mean of each side's medians over the call's runs) with no higher peak, and its ttt run
# ends at val <= 3.41. Else it is removed (its row in the experiments README).
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
md5sum speedrun/optim/muon.py speedrun/kernels/relu2_fp8.py speedrun/model/fp8.py | cut -c1-12,34-
STEP="--recipe fast_1gpu --steps 30 --at-step 900 --at-step 999"
show() { grep -E "compile \+ warm-up" $1 | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-100
  grep -E "^ +(900|999) " $1 | cut -c1-70; grep -iE "error|Traceback" $1 | tail -n 2 | cut -c1-200; }
for x in demo gpt2; do [ -d .data/p53 ] && ln -sfn $ROOT/speedrun/data/$x .data/p53/speedrun/data/$x; done
[ -d .data/p53 ] && md5sum .data/p53/speedrun/kernels/relu2_fp8.py .data/p53/speedrun/model/fp8.py | cut -c1-12,34-
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; echo "setup rc $? at $(( $(date +%s) - T0 ))s"
      grep -E "corpus:|torch" $OUT/setup.txt | cut -c1-200 ;;
    pair)
      k=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
      [ "$k" = 6 ] || { echo "$k of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
      ls -d /tmp/torchinductor_* ~/.triton 2>/dev/null | head -3; echo "(compile folders above, if any)"
      LIMIT=${TLIM:-520} bash benchmarks/gpu_session.sh ttt g53 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/pair.txt 2>&1
      echo "pair rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/g53 2>/dev/null | head
      tail -n 5 $OUT/pair.txt | cut -c1-250 ;;
    step)
      timeout ${LIM:-150} python3 benchmarks/step_time.py $STEP > $OUT/step_${n}_main.txt 2>&1
      echo "step rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_main.txt ;;
    kbench)
      timeout 100 python3 benchmarks/relu2_fp8.py --configs 64x128x8 > $OUT/kbench_main.txt 2>&1; echo "kbench main rc $?"
      (cd .data/p53 && PYTHONPATH=$PWD timeout 100 python3 benchmarks/relu2_fp8.py --configs 64x128x8) > $OUT/kbench_53.txt 2>&1
      echo "kbench 53 rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^(fwd|grad)" $OUT/kbench_main.txt $OUT/kbench_53.txt | cut -c1-120 ;;
    ktests53)
      (cd .data/p53 && PYTHONPATH=$PWD timeout 240 python3 -m pytest -q -s tests/gpu/test_gpu.py -k "relu2 or delayed") > $OUT/ktests53.txt 2>&1
      echo "ktests53 rc $? at $(( $(date +%s) - T0 ))s"; grep -E "relative|equal|Error|assert" $OUT/ktests53.txt | head -n 10 | cut -c1-200
      tail -n 1 $OUT/ktests53.txt ;;
    stepbase|step53)
      d=$ROOT; [ $c = step53 ] && d=$ROOT/.data/p53
      (cd $d && PYTHONPATH=$PWD timeout ${LIM:-170} python3 $ROOT/benchmarks/step_time.py $STEP) > $OUT/step_${n}_$c.txt 2>&1
      echo "$c rc $? at $(( $(date +%s) - T0 ))s"; show $OUT/step_${n}_$c.txt; grep -E "^ +(900|999) " $OUT/step_${n}_$c.txt | cut -c70- ;;
    ttt53)
      (cd .data/p53 && PYTHONPATH=$PWD OUT=$OUT LIMIT=${TLIM:-240} bash benchmarks/gpu_session.sh ttt p53 --target 3.41 \
        fast:fast_1gpu,seed=7) > $OUT/ttt53.txt 2>&1
      echo "ttt53 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 3 $OUT/ttt53.txt | cut -c1-250 ;;
    suite53)
      (cd .data/p53 && PYTHONPATH=$PWD OUT=$OUT bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 3); echo "suite53 at $(( $(date +%s) - T0 ))s" ;;
  esac
done
echo "done at $(( $(date +%s) - T0 ))s"
