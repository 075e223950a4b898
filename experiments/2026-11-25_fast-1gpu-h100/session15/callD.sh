#!/usr/bin/env bash
# Part 15, call D (no carry; /tmp/corpus and /tmp/fa4site from the calls before): goal 4's other two runs (seeds 5, 6),
# each alone, then `fast_1gpu` at seed 1 with FlexAttention and part 14's 1000 steps (with FlashAttention-4: 3.4333):
# is the seed gap the token-window rule's?
export PYTHONUNBUFFERED=1; T0=$(date +%s)
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh >/dev/null
LIMIT=585 bash benchmarks/gpu_session.sh ttt d --target 3.41 f5:fast_1gpu,seed=5 f6:fast_1gpu,seed=6 \
  s1tri:fast_1gpu,seed=1,steps=1000,attention_kernel=triton > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt
