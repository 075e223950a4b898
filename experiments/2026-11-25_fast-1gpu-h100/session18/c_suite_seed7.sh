#!/usr/bin/env bash
# Part 18, call c, on the machine of call b (carry .data/corpus; .data/park came with call b): the GPU suite
# beside one 1200-step fast_1gpu run at seed 7 with fp8_mlp_scaling=delayed (part 16's dynamic run there: 3.3806).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup3.txt 2>&1; tail -1 $OUT/setup3.txt | cut -c1-200
(timeout 330 python3 -m pytest -q tests/gpu -p no:cacheprovider > $OUT/gpu_tests.txt 2>&1; echo "suite rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
LIMIT=330 bash benchmarks/gpu_session.sh ttt d --target 3.41 delayed:fast_1gpu,seed=7,fp8_mlp_scaling=delayed > $OUT/ttt_d.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; wait
tail -3 $OUT/gpu_tests.txt | cut -c1-250; grep -E "FAILED" $OUT/gpu_tests.txt | cut -c1-200; tail -6 $OUT/ttt_d.txt | cut -c1-250
