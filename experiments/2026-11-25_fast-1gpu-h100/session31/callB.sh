#!/usr/bin/env bash
# Part 31 (planned), call B (carry [".data/park"]; call A's machine): three at once, losses only, main's tree.
#   s1000_8, s1000_13: `fast_1gpu` at 1000 steps, seeds 8 and 13. Rule (fixed in part 29): `fast` moves to 1000 steps if
#     s1000_8 and part 30's seed-7 run at 1000 steps (3.3983) both end at or under 3.400; s1000_13 is then goal 4's third
#     run (with the seed-7 run and s1000_8).
#   e1k_8: the same at 1000 steps with the head sampled to the last step (sampled_head_end_frac=1.0), seed 8. Rule (fixed
#     in part 30): it goes on to more seeds if it ends at most 0.003 over s1000_8 and its step at the final window is
#     <= 70 ms (part 30: 68.99 ms; call A measures it again).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
n=$(ls /tmp/corpus/corpus_train_00000[0-2].bin 2>/dev/null | wc -l)
[ "$n" = 3 ] || { echo "NOT CALL A'S MACHINE: $n of shards 0-2 here; carry .data/corpus as well"; exit 3; }
LIMIT=560 bash benchmarks/gpu_session.sh ttt s31 --target 3.41 --parallel 3 s1000_8:fast_1gpu,seed=8,steps=1000 \
  s1000_13:fast_1gpu,seed=13,steps=1000 e1k_8:fast_1gpu,seed=8,steps=1000,sampled_head_end_frac=1.0 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt | cut -c1-250
