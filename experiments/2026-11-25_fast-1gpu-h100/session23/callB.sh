#!/usr/bin/env bash
# Part 23, call B (carry [".data/corpus"]: train shards 0-3 + val, unpacked here for calls C and D): install, and the
# compiled Muon step's GPU test alone, an early look before call C's whole suite.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q -s tests/gpu/test_optim_gpu.py > $OUT/optim_test.txt 2>&1
echo "optim test rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^Muon, 3|passed|failed" $OUT/optim_test.txt | cut -c1-300
