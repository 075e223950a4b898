#!/usr/bin/env bash
# Part 16, call B (carry [".data/corpus"]: train shards 0-3; call A unpacked shard 4 + val and compiled `fast_1gpu`):
# goal 1 in one call, each run alone: `fast_1gpu` at 1200 steps (candidate, from 1250) at seed 7, which no run has used,
# then `record21_1gpu` at seed 0 (where it reached 3.41 in parts 7-14; at seed 4 it did not).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
LIMIT=585 bash benchmarks/gpu_session.sh ttt b --target 3.41 f7:fast_1gpu,seed=7,steps=1200 r0:record21_1gpu,seed=0 \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/b/ | head; tail -5 $OUT/ttt.txt
