#!/usr/bin/env bash
# NOT RUN in part 30 (no device time left); the same runs and rules are session31/callB.sh.
# Part 30, call D (carry [".data/cand"]; the same machine): three at once on call A's chosen tree, losses only.
#   s1000_8, s1000_13: `fast_1gpu` at 1000 steps, seeds 8 and 13. Rule (fixed in part 29): `fast` moves to 1000 steps if
#     s1000_8 and call C's fast1000 (seed 7) both end at or under 3.400; s1000_13 is then goal 4's third run.
#   e1k_8: the same at 1000 steps with the head sampled to the last step (sampled_head_end_frac=1.0), seed 8. Rule, fixed
#     here: it goes on to more seeds if it ends at most 0.003 over s1000_8 and call A's step at 1099 is <= 70 ms.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
d=$(cat /tmp/s30_decision 2>/dev/null) || { echo "NO DECISION (not call A's machine)"; exit 3; }
tar xzf .data/cand/s30_$d.tgz && echo "tree: s30-$d"
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=560 bash benchmarks/gpu_session.sh ttt s30 --target 3.41 --parallel 3 s1000_8:fast_1gpu,seed=8,steps=1000 \
  s1000_13:fast_1gpu,seed=13,steps=1000 e1k_8:fast_1gpu,seed=8,steps=1000,sampled_head_end_frac=1.0 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt | cut -c1-250
