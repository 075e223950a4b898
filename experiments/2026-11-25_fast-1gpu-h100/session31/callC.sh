#!/usr/bin/env bash
# Part 31 (planned), call C (no carry; all six files in /tmp/corpus from calls A and B): goal 1 with `fast_1gpu` as main
# has it when the call runs (1000 steps if call B's rule moved it), each run alone, against `record21_1gpu`.
# Part 30: `--set steps=1000` at seed 7, 64.9 against 159.8 s (0.406x). If call B only moves `fast` to 1000 steps, that
# run already is this measurement (main's code then is byte for byte part 30's tree): skip this call and spend the
# device time on call D. Run it when the recipe differs from that run's (e.g. the head sampled to the end).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
grep -E "^steps" speedrun/recipes/fast.toml
LIMIT=560 bash benchmarks/gpu_session.sh ttt g --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt | cut -c1-250
