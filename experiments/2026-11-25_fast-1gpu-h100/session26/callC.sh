#!/usr/bin/env bash
# Part 26, call C: the GPU suite on main's final code (the sliced validation loss merged; skip_pairs and
# block_lambda_init stay on the branch candidates-s26 whatever call B shows, since one seed cannot settle them).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader; git log --oneline -1 2>/dev/null | cut -c1-80
python3 -m pytest -q tests/gpu > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; tail -1 $OUT/gpu_tests.txt
