#!/usr/bin/env bash
# Part 17, call B2 (carry [".data/corpus"]: train shards 0-3; shard 4 and val unpacked by B1 on the same machine): the
# whole GPU suite on the commit under test, beside one `fast_1gpu` run with fp8_mlp_scaling=delayed at seed 7 on the
# 1-GPU track (its loss against part 16's 3.3806 at seed 7 with dynamic scales; its time is not a figure here).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-200
(timeout 330 python3 -m pytest -q tests/gpu -s -p no:cacheprovider > $OUT/gpu_tests.txt 2>&1; echo "tests rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
LIMIT=330 bash benchmarks/gpu_session.sh ttt b2 --target 3.41 delayed:fast_1gpu,seed=7,fp8_mlp_scaling=delayed > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; wait; tail -3 $OUT/gpu_tests.txt; tail -4 $OUT/ttt.txt | cut -c1-250
