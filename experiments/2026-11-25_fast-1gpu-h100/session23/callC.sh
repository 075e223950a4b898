#!/usr/bin/env bash
# Part 23, call C (carry [".data/park"]: train shard 4 + val; call B unpacked shards 0-3 on this machine): the GPU
# tests on this session's final code, beside `fast_1gpu` at 1100 steps (not 1200) at seeds 7, 8 and 11, three at once
# (losses only: the runs share the GPU). At 1200 steps the same recipe ended at 3.3715 / 3.3748 / 3.3694 there
# (part 22, #114-116). Refuses to train unless all five train shards are there (then only the tests run).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1 &
tests=$!
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" = 5 ]; then
  LIMIT=540 bash benchmarks/gpu_session.sh ttt c --target 3.41 --parallel 3 \
    s7:fast_1gpu,seed=7,steps=1100 s8:fast_1gpu,seed=8,steps=1100 s11:fast_1gpu,seed=11,steps=1100 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed since call B)"
fi
wait $tests; echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^Muon, 3|softcap CE kernel, fast" $OUT/gpu_tests.txt | cut -c1-300; tail -2 $OUT/gpu_tests.txt
