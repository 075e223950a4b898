#!/usr/bin/env bash
# Part 21, call C2 (carry [".data/park"]: train shard 4 + val; C1 unpacked shards 0-3 on this machine): the GPU tests on
# the session's final code (the resume test now with its lost-momentum control and a 0.05 bound), beside `fast_1gpu`
# at 1150 steps (not 1200) at seeds 7, 8 and 11, three at once (losses only): what 50 fewer steps cost at seeds whose
# 1200-step runs ended at 3.3852 / 3.3748 / 3.3879. Refuses to train unless all five train shards are there.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
git log --oneline -1 2>/dev/null
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1 &
tests=$!
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" = 5 ]; then
  LIMIT=540 bash benchmarks/gpu_session.sh ttt c --target 3.41 --parallel 3 \
    s7:fast_1gpu,seed=7,steps=1150 s8:fast_1gpu,seed=8,steps=1150 s11:fast_1gpu,seed=11,steps=1150 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -7 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed since call C1)"
fi
wait $tests; echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep "GPU resume vs straight" $OUT/gpu_tests.txt | cut -c1-400
tail -2 $OUT/gpu_tests.txt
