#!/usr/bin/env bash
# Part 24, call B (carry [".data/park"]: train shard 4 + val; call A unpacked shards 0-3 on this machine): the GPU
# tests beside three 1100-step runs at once (losses only: they share the GPU). If call A's rule sent fp8_qkv on:
# fast_1gpu,fp8_qkv=true at seeds 7, 8 and 11 (session 23's 1100-step runs there: 3.3904 / 3.3927 / 3.3923, mean
# 3.3918). Else: fast_1gpu at seeds 12, 13 and 14, never run at 1100 steps (goal 4).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1 &
tests=$!
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
decision=$(cat /tmp/s24/decision 2>/dev/null || echo none); echo "call A's decision: $decision"
if [ "$n" = 5 ] && [ "$decision" = qkv ]; then
  LIMIT=540 bash benchmarks/gpu_session.sh ttt b --target 3.41 --parallel 3 \
    q7:fast_1gpu,fp8_qkv=true,seed=7 q8:fast_1gpu,fp8_qkv=true,seed=8 q11:fast_1gpu,fp8_qkv=true,seed=11 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
elif [ "$n" = 5 ]; then
  LIMIT=540 bash benchmarks/gpu_session.sh ttt b --target 3.41 --parallel 3 \
    s12:fast_1gpu,seed=12 s13:fast_1gpu,seed=13 s14:fast_1gpu,seed=14 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed since call A)"
fi
wait $tests; echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "FP8 QKV" $OUT/gpu_tests.txt | cut -c1-300; tail -2 $OUT/gpu_tests.txt
