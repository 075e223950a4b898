#!/usr/bin/env bash
# Part 30, call C (carry [".data/cand"]; all six files in /tmp/corpus from calls A and B): goal 1 with the sampled
# softmax, each run alone, on call A's chosen tree: `fast_1gpu` at seed 7, the same at 1000 steps, `record21_1gpu`
# (part 29: tied alone 82.0 against 160.3 s, 0.512x). The 1000-step run is the first seed of call D's rule.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
d=$(cat /tmp/s30_decision 2>/dev/null) || { echo "NO DECISION (not call A's machine)"; exit 3; }
tar xzf .data/cand/s30_$d.tgz && echo "tree: s30-$d"
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=585 bash benchmarks/gpu_session.sh ttt g --target 3.41 fast:fast_1gpu,seed=7 fast1000:fast_1gpu,seed=7,steps=1000 \
  record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt | cut -c1-250
