#!/usr/bin/env bash
# Part 28 (planned; branch candidates-s27b), call A: a fresh machine, carry [".data/corpus"] (call B brings shard 4).
# The GPU suite on the branch (with tests/gpu/test_tied_head_gpu.py, not yet run): step 1 of the rule fixed in part 27.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "tied head|passed|failed|Error" $OUT/gpu_tests.txt | tail -5 | cut -c1-250
