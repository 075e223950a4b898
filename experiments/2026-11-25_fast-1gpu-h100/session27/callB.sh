#!/usr/bin/env bash
# Part 27 (planned; branch candidates-s27), call B (carry [".data/park"]: shard 4 + val; call A unpacked shards 0-3 on
# this machine): goal 1 in one call, each run alone on the GPU: `fast_1gpu` (seed 7) then `record21_1gpu`, both with
# the branch's `python_gc_frozen`; then benchmarks/step_stalls.py over both logs. Every solo run log of parts 20-24
# has 13 stalls of 20-45 ms (every 82-89 steps in fast_1gpu, every 131 in record21_1gpu).
# The rule, fixed before the run: the frozen collector goes to main if call A's suite passed and each of the two logs
# here shows at most 2 stalls over 8 ms.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=540 bash benchmarks/gpu_session.sh ttt g --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt | cut -c1-250
python3 benchmarks/step_stalls.py /tmp/ttt/g/*/*_1gpu_*.txt | sed 's#.*/g/##' | cut -c1-250
# The ReLU² FP8 kernels over 16 launch configurations (benchmarks/relu2_fp8.py; never tuned): a configuration at
# least 10% faster on `grad` or on `fwd` + `fwd_t` together, output the same, becomes the default in a later commit.
python3 benchmarks/relu2_fp8.py --json $OUT/relu2.json > $OUT/relu2.txt 2>&1
echo "relu2 rc $? at $(( $(date +%s) - T0 ))s"; tail -1 $OUT/relu2.txt | cut -c1-300
