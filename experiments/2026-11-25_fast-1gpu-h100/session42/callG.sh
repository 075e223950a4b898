#!/usr/bin/env bash
# Part 42, call G (348 s of device time left: too few for the whole suite after a start): the GPU tests that reach
# the code changed after acfda4a (checkpoint.resolve, the run's checkpoint folder), on the final commit, each test
# file alone under a deadline, so whatever finishes reports a summary line.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
timeout 140 python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py > $OUT/gpu_ckpt.txt 2>&1
echo "rc $? at $(( $(date +%s) - T0 ))s"; tail -n 1 $OUT/gpu_ckpt.txt
