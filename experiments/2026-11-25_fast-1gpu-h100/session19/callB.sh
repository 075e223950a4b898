#!/usr/bin/env bash
# Part 19, call B (carry [".data/corpus"]: train shards 0-3 + val; call A unpacked shard 4 and compiled `fast_1gpu`):
# goal 1 in one call, each run alone: `fast_1gpu` (delayed FP8 MLP, 1200 steps) at seed 11, which no run has used,
# then `record21_1gpu` at seed 0 (where it reaches 3.41). The fast run is also goal 4's third delayed-scale run.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
LIMIT=585 bash benchmarks/gpu_session.sh ttt b --target 3.41 f11:fast_1gpu,seed=11 r0:record21_1gpu,seed=0 \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/b/ | head; tail -5 $OUT/ttt.txt
