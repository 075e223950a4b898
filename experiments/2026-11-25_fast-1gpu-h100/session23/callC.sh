#!/usr/bin/env bash
# Part 23, call C (carry [".data/park"]: train shard 4 + val; call B unpacked shards 0-3 on this machine): goal 1 in
# one call, each run alone on the GPU: `fast_1gpu` (1200 steps) and `record21_1gpu` to val 3.41 on the 1-GPU track,
# then `fast_1gpu` at 1100 steps. Seed 7 for `fast` (part 22's #114 and #117 ran it at 1200 steps).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here (machine changed since call B)"; exit 3; fi
LIMIT=565 bash benchmarks/gpu_session.sh ttt c --target 3.41 \
  fast:fast_1gpu,seed=7 record21:record21_1gpu fast1100:fast_1gpu,seed=7,steps=1100 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -9 $OUT/ttt.txt | cut -c1-250
