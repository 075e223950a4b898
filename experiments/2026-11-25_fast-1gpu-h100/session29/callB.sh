#!/usr/bin/env bash
# Part 29 call B (carry [".data/park"], call A's machine): goal 1 with the tied embedding and head, each run
# alone: `fast_1gpu` (tied since part 28) at seed 7 against `record21_1gpu` in the same call (part 27: 81.5 against
# 159.5 s untied, 0.511x).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=540 bash benchmarks/gpu_session.sh ttt g --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt | cut -c1-250
