#!/usr/bin/env bash
# Part 56: the second part-55 candidate measured (branch candidates-p55b-grad-layout, 7118e40, its tree carried as
# .data/p55b): the FP8 head's weight gradient row-major in the weight's dtype, so autograd neither casts it nor copies
# it into the tied table's layout.
# Rule (the branch's commit message, fixed before any GPU call): it goes to main if its GPU tests pass (tests/gpu),
# its step at 999 is at most 0.995x main's and at 900 at most 1.002x (mean of each side's medians, step_time.py, runs
# alternated in one call), with no higher peak, and fast_1gpu seed 7 ends at val <= main's same-call run + 0.003.
# Cases, in the order given; every output goes to /tmp/w, packed into $OUT/call.tgz at the end (one file back):
#   setup     install; unpack carried shards into /tmp/corpus (gpu_session.sh setup)
#   suite     the candidate tree's tests/gpu, in two parallel halves
#   m | c     step_time.py --at-step 900 --at-step 999 (STEPS timed, WARM warm-up steps a window) on main's tree (m) or
#             the candidate's (c); mp | cp: the same with --profile (5 steps at 999 after the timing) and --json
#   tm | tc   fast_1gpu seed 7 on the 1-GPU track (val at step 0 and the end), main's tree or the candidate's; needs
#             the track's 6 shards unpacked by this or earlier calls on the same machine
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD; W=/tmp/w; rm -rf $W; mkdir -p $W
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
for x in demo gpt2; do [ -d .data/p55b ] && ln -sfn $ROOT/speedrun/data/$x .data/p55b/speedrun/data/$x; done
md5sum speedrun/model/fp8.py .data/p55b/speedrun/model/fp8.py | cut -c1-12,34-
at() { echo "at $(( $(date +%s) - T0 ))s"; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $W/setup.txt 2>&1; echo "setup rc $? $(at)"
      grep -E "corpus:|torch" $W/setup.txt | cut -c1-200 ;;
    suite)
      (cd .data/p55b && export PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
       others=$(ls tests/gpu/test_*.py | grep -v '/test_gpu.py$')
       timeout 300 python3 -m pytest -q tests/gpu/test_gpu.py > $W/gpu_a.txt 2>&1 & a=$!
       timeout 300 python3 -m pytest -q -s $others > $W/gpu_b.txt 2>&1 & b=$!
       wait $a; wait $b)
      echo "suite $(at)"; grep -E "FAILED|Error" $W/gpu_b.txt $W/gpu_a.txt | head -n 8 | cut -c1-250
      tail -qn 1 $W/gpu_a.txt $W/gpu_b.txt ;;
    m|c|mp|cp)
      d=$ROOT; [ ${c:0:1} = c ] && d=$ROOT/.data/p55b; extra=""; f=$W/step_${n}_$c
      [ ${#c} = 2 ] && extra="--profile --json $f.json"
      (cd $d && PYTHONPATH=$PWD timeout ${LIM:-240} python3 $ROOT/benchmarks/step_time.py --recipe fast_1gpu \
        --steps ${STEPS:-30} --warmup ${WARM:-10} --at-step 900 --at-step 999 $extra) > $f.txt 2>&1
      echo "$c rc $? $(at)"; grep -E "compile \+ warm-up" $f.txt | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-90
      grep -E "^ +(900|999) " $f.txt | cut -c1-120; grep -iE "error|Traceback" $f.txt | tail -n 2 | cut -c1-200
      [ ${#c} = 2 ] && grep -A12 "^kernel family" $f.txt ;;
    tm|tc)
      k=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
      [ "$k" = 6 ] || { echo "$k of the track's 6 shards here; carry the rest"; continue; }
      d=$ROOT; [ $c = tc ] && d=$ROOT/.data/p55b
      (cd $d && PYTHONPATH=$PWD OUT=$W LIMIT=${TLIM:-240} bash benchmarks/gpu_session.sh ttt ${c}_$n --target 3.41 \
        fast:fast_1gpu,seed=7) > $W/ttt_${n}_$c.txt 2>&1
      echo "$c rc $? $(at)"; tail -n 3 $W/ttt_${n}_$c.txt | cut -c1-250 ;;
  esac
done
tar czf $OUT/call.tgz -C $W .; echo "done $(at)"
