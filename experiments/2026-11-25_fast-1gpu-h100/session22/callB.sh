#!/usr/bin/env bash
# Part 22, call B (carry [".data/park"]: train shard 4 + val; call A unpacked shards 0-3 on this machine): the GPU tests
# on this tree, beside `fast_1gpu` with the loss kernel's approximate-tanh sigmoid at seeds 7, 8 and 11, three at once
# (losses only: the runs share the GPU). With the exact sigmoid the same recipe ended at 3.3852 / 3.3748 / 3.3879
# (parts 18 and 20). Refuses to train unless all five train shards are there (then only the tests run).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1 &
tests=$!
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" = 5 ]; then
  LIMIT=560 bash benchmarks/gpu_session.sh ttt b --target 3.41 --parallel 3 \
    t7:fast_1gpu,seed=7 t8:fast_1gpu,seed=8 t11:fast_1gpu,seed=11 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -8 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed since call A)"
fi
wait $tests; echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "softcap CE kernel, fast" $OUT/gpu_tests.txt | cut -c1-300; tail -2 $OUT/gpu_tests.txt
