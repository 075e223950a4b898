#!/usr/bin/env bash
# Part 27 (planned; branch candidates-s27), call A: the session's first call, so a fresh machine; carry [".data/corpus"]
# (call B brings shard 4). 1. goal 3, a fourth sample: `fast_1gpu` launched on empty compile folders (parts 25-26:
# 102.8, 98.4, 101.8 s); the branch adds one gc.collect() before the first timed step (0.1-0.3 s on this machine's CPU).
# 2. the GPU suite on the branch (`python_gc_frozen` around the timed loop).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_summary.txt 2>&1
echo "launch rc $? at $(( $(date +%s) - T0 ))s"; cut -c1-250 $OUT/launch_summary.txt | tail -14
python3 -m pytest -q tests/gpu > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; tail -1 $OUT/gpu_tests.txt
