#!/usr/bin/env bash
# Part 14's plan, call C (carry [".data/corpus"] holding train shards 0-3 only): does record21_1gpu move with the seed
# as fast_1gpu did (seed 0: 3.4038; fast_1gpu 3.4054 at seed 0, 3.43-3.44 at seeds 1-3)? Losses only: two runs
# share the GPU, so their times are not figures.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh \
  ttt c1 --target 3.41 --parallel 2 r21s1:record21_1gpu,seed=1 r21s2:record21_1gpu,seed=2 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt
