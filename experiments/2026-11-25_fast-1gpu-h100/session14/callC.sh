#!/usr/bin/env bash
# Part 14's plan, call C (carry [".data/corpus"] holding train shards 0-3 only): first `fast_1gpu` alone on a compile
# cache nothing has warmed (goal 3: launch to first timed step on a fresh machine; also a seed-0 run of the recipe as
# it now is), then: does record21_1gpu move with the seed as fast_1gpu did (seed 0: 3.4038; fast_1gpu 3.4054 at seed
# 0, 3.43-3.44 at seeds 1-3)? The two seeds share the GPU: losses only, their times are not figures.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages
LIMIT=220 bash benchmarks/gpu_session.sh ttt c0 --target 3.41 fresh:fast_1gpu > $OUT/ttt0.txt 2>&1
echo "fresh rc $? at $(( $(date +%s) - T0 ))s"; grep -h "launch to first" /tmp/ttt/c0/fresh/console.txt; tail -2 $OUT/ttt0.txt
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh \
  ttt c1 --target 3.41 --parallel 2 r21s1:record21_1gpu,seed=1 r21s2:record21_1gpu,seed=2 > $OUT/ttt1.txt 2>&1
echo "seeds rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/ttt1.txt
