#!/usr/bin/env bash
# Part 23, call D (no carry: the machine of calls B and C, all five shards unpacked there): `fast_1gpu` at 1100 steps
# at seeds 8 and 11, two at once (losses only: the runs share the GPU). At 1200 steps the same recipe ended at
# 3.3748 / 3.3694 there (part 22, #115 / #116).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here (machine changed since call C)"; exit 3; fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
LIMIT=420 bash benchmarks/gpu_session.sh ttt d --target 3.41 --parallel 2 \
  s8:fast_1gpu,seed=8,steps=1100 s11:fast_1gpu,seed=11,steps=1100 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
