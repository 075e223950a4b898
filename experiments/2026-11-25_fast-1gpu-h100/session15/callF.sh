#!/usr/bin/env bash
# Part 15, call F (no carry; run inline after call E, kept here as run): `fast_1gpu` at 1250 steps and seeds 4, 5, 6
# with FlexAttention (attention_kernel=triton; the token-window rule had just trained worse at seed 1), three at once
# on the GPU: losses only, their times are not figures.
export PYTHONUNBUFFERED=1; source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh >/dev/null
LIMIT=470 bash benchmarks/gpu_session.sh ttt f --target 3.41 --parallel 3 t4:fast_1gpu,seed=4,attention_kernel=triton \
  t5:fast_1gpu,seed=5,attention_kernel=triton t6:fast_1gpu,seed=6,attention_kernel=triton > $OUT/ttt.txt 2>&1
echo rc $?; tail -5 $OUT/ttt.txt
