#!/usr/bin/env bash
# Part 19, call A (carry [".data/park"]: train shard 4 + val), the session's first call on a fresh machine: unpack
# them, then launch `fast_1gpu` (delayed FP8 MLP) on an empty compile cache: goal 3's launch to the first timed step.
# 30 steps on shard 4 and a short validation: the launch does not depend on the step count or the shards.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-200
echo "setup done at $(( $(date +%s) - T0 ))s"
timeout 400 speedrun train --recipe fast_1gpu --set steps=30 --set train_files=/tmp/corpus/corpus_train_000004.bin \
  --set val_files=/tmp/corpus/corpus_val_000000.bin --set val_tokens=262144 --set val_every=0 \
  --log-dir $OUT/launch --no-final-checkpoint --print-every 10 > $OUT/launch.txt 2>&1
echo "train rc $? at $(( $(date +%s) - T0 ))s"
grep -E "warm-up|launch|val_loss|val loss|peak" $OUT/launch.txt | tail -6 | cut -c1-300
