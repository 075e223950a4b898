#!/usr/bin/env bash
# Part 34, call F: call E's machine, main b7953e5, carry [".data/corpus"]. Goal 1: fast_1gpu (seed 7) then
# record21_1gpu, each alone, 1-GPU track, val at step 0 and the end.
LIMIT=585 bash benchmarks/gpu_session.sh ttt g34 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu 2>&1 | tee $OUT/ttt.txt | tail -25
