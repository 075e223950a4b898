#!/usr/bin/env bash
# Part 32, call C2 (call B2's machine; carry [".data/corpus"]: train shards 0-2; B2 left shards 3-4 and val in
# /tmp/corpus): four runs at once, losses only (val at the end), 1000 steps: main's `fast_1gpu` at seed 8 and `wn`
# (weighted negatives, sampled head to the end) at seeds 8, 7 and 13. The rule is in callB2.sh.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
bash benchmarks/gpu_session.sh setup > /dev/null 2>&1
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
if [ "$n" != 6 ]; then echo "NOT CALL B2'S MACHINE: $n of 6 track files here"; exit 3; fi
W=sampled_head_weighted_negatives=true,sampled_head_end_frac=1.0
LIMIT=560 bash benchmarks/gpu_session.sh ttt c32 --target 3.41 --parallel 4 base8:fast_1gpu,seed=8 \
  wn8:fast_1gpu,seed=8,$W wn7:fast_1gpu,seed=7,$W wn13:fast_1gpu,seed=13,$W > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -8 $OUT/ttt.txt | cut -c1-250
