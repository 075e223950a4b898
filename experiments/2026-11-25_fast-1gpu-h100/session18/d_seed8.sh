#!/usr/bin/env bash
# Part 18: the loss of delayed against dynamic FP8 scaling at seed 8, both at once on one GPU (losses compare,
# step times do not), on a machine that unpacked .data/park in the call before (carry .data/corpus here).
bash benchmarks/gpu_session.sh setup > $OUT/setup5.txt 2>&1; tail -1 $OUT/setup5.txt | cut -c1-120
LIMIT=420 bash benchmarks/gpu_session.sh ttt s8 --target 3.41 --parallel 2 \
  delayed:fast_1gpu,seed=8,fp8_mlp_scaling=delayed dynamic:fast_1gpu,seed=8,fp8_mlp_scaling=dynamic 2>&1 | tail -5
