#!/usr/bin/env bash
# Part 29, call A (main at fa00a21, `tied_head = true` in `fast`; the GPU suite on main's code):
# a fresh machine, carry [".data/corpus"] (call B brings shard 4). The GPU suite, now with a fresh compile cache per
# test and a failure if TorchDynamo's recompile limit is hit (tests/conftest.py; part 28's red test).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "recompile_limit|passed|failed|FAILED|Error" $OUT/gpu_tests.txt | tail -6 | cut -c1-250
