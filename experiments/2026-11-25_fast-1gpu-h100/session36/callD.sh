#!/usr/bin/env bash
# Part 36, call D: the GPU suite on main's final code (compile caches keyed to the traced source), two processes.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 2 $f; done
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
