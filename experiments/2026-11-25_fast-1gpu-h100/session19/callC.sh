#!/usr/bin/env bash
# Part 19, call C (no carry; /tmp/corpus from calls A and B): the whole GPU suite on the commit under test, beside two
# `fast_1gpu` runs (delayed FP8 MLP, 1200 steps) at unseen seeds 12 and 13 sharing the GPU (losses only, no times).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # lets the runs fit beside the tests; no arithmetic changes
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
(timeout 570 python3 -m pytest -q tests/gpu -p no:cacheprovider > $OUT/gpu_tests.txt 2>&1; echo "tests rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
LIMIT=560 bash benchmarks/gpu_session.sh ttt c --target 3.41 --parallel 2 f12:fast_1gpu,seed=12 \
  f13:fast_1gpu,seed=13 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; wait; tail -3 $OUT/gpu_tests.txt; tail -6 $OUT/ttt.txt
