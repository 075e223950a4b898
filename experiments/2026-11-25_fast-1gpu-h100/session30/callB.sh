#!/usr/bin/env bash
# Part 30, call B (carry [".data/park", ".data/cand"]; call A's machine): the GPU suite on the tree that call A's rule
# chose (main + the warm-up fix, with or without the graph break), then nothing else (about 350-430 s).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
d=$(cat /tmp/s30_decision 2>/dev/null) || { echo "NO DECISION (not call A's machine)"; exit 3; }
tar xzf .data/cand/s30_$d.tgz && echo "tree: s30-$d"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "recompile_limit|passed|failed|FAILED|Error" $OUT/gpu_tests.txt | tail -6 | cut -c1-250
