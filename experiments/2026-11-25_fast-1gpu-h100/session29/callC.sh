#!/usr/bin/env bash
# Part 29 call C (carry [".data/cand"]; call B's machine, all five shards there), three at once at seed 13 (losses only;
# `fast_1gpu` is tied since part 28, and its seed-13 run there ended at 3.3754):
#   tie13:  `fast_1gpu` as it is;
#   ema13:  + endgame averaging as upstream's TailEMA record (embedding tables and head, EMA decay 0.9933 from 65% of
#           the steps, blended 65% into the weights after the last step);
#   samp13: + the sampled softmax (sampled_head_rows=12288: every target of the step, then negatives from an offset
#           moving each step, 24% of the head's rows; at most 9,363 distinct targets a step on this track; the full
#           softmax from 93% of the steps on, as upstream's ANVIL records).
# The averaging rule, fixed here (as in part 28's plan): ema13 is run again at a second seed in a later call if it ends
# at least 0.003 under tie13, and goes into `fast` only if it is again at least 0.003 under its pair there.
# The sampled-softmax rule, fixed here: it goes on if samp13 ends at most 0.003 over tie13 (the loss the shorter step
# must buy back) and call D measures its step at 0.95x or less of the tied step's at step 1000; then a second seed
# confirms the loss in a later call.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
# The candidates' code is branch candidates-s28 (ef0d0ac); it travels as .data/cand/cand_s28.tgz (carry [".data/cand"],
# `git archive candidates-s28 speedrun tests benchmarks/step_time.py`) and is unpacked over main's tree here.
tar xzf .data/cand/cand_s28.tgz || { echo 'NO CANDIDATES: the archive did not unpack'; exit 3; }
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here (machine changed since call B)"; exit 3; fi
LIMIT=540 bash benchmarks/gpu_session.sh ttt s13 --target 3.41 --parallel 3 tie13:fast_1gpu,seed=13 \
  "ema13:fast_1gpu,seed=13,tail_average_groups=['embed','head']" samp13:fast_1gpu,seed=13,sampled_head_rows=12288 \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt | cut -c1-250
