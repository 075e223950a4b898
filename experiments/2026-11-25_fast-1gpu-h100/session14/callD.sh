#!/usr/bin/env bash
# Part 14's plan, call D (no carry; /tmp/corpus and /tmp/fa4site from calls B and C): how many steps fast_1gpu needs
# at seed 1 (1000 steps: 3.4333), and FlexAttention at seed 1 (is the seed gap the kernel's?). Losses only.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh \
  ttt c2 --target 3.41 --parallel 3 s1n1150:fast_1gpu,seed=1,steps=1150 s1n1300:fast_1gpu,seed=1,steps=1300 \
  s1tri:fast_1gpu,seed=1,attention_kernel=triton > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt
