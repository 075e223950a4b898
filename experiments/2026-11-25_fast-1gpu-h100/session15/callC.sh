#!/usr/bin/env bash
# Part 15, call C (carry [".data/corpus"], train shards 0-3; session14/callA.sh and callB.sh ran just before, nothing
# compiled yet): `fast_1gpu` at its new 1250 steps and a seed no run has used (4), alone on a cold compile cache (goal
# 3's launch; goal 4's first run), then `record21_1gpu` at the same seed, alone (goal 1's baseline in the same call;
# and does record21 move with the seed as fast did?).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh >/dev/null
LIMIT=585 bash benchmarks/gpu_session.sh ttt c --target 3.41 f4:fast_1gpu,seed=4 r4:record21_1gpu,seed=4 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/c/; tail -4 $OUT/ttt.txt
