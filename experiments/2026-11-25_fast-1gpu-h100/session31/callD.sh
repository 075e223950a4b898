#!/usr/bin/env bash
# Part 31 (planned), call D (carry [".data/cand"]; the same machine as calls A-C, all six files in /tmp/corpus): three at
# once, losses only, at seed 15 (not used before), each at the step count `fast` has when the call runs. Make the
# archive (call A's) from branch candidates-s30 with main merged in (main + the split compile, the endgame average and the
# momentum cooldown, the last two off; the split changes how the model compiles, not what it computes, and all three
# runs share it):
#   git archive candidates-s30 speedrun tests benchmarks/step_time.py | gzip > .data/cand/cand_s30.tgz
#   base15: `fast_1gpu` as it is.
#   mom15:  muon_momentum_cooldown_steps=50 (upstream record 39: Muon's momentum back to 0.85 over the last 50 steps).
#   ema15:  tail_average_groups=['embed','head'] (upstream's tail EMA on embedding and head; part 29: 0.0058 under its
#           pair at seed 13, before the sampled softmax).
# Rules, fixed here: each candidate gets a second seed if it ends at least 0.003 under base15; otherwise it is removed
# from the code and keeps its row in the experiments README with the commit that held it.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
tar xzf .data/cand/cand_s30.tgz || { echo "NO CANDIDATES"; exit 3; }
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=560 bash benchmarks/gpu_session.sh ttt d31 --target 3.41 --parallel 3 base15:fast_1gpu,seed=15 \
  mom15:fast_1gpu,seed=15,muon_momentum_cooldown_steps=50 "ema15:fast_1gpu,seed=15,tail_average_groups=['embed','head']" \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt | cut -c1-250
