#!/usr/bin/env bash
# Part 35, call B (fresh machine, main ad2c271's code): the backward FP8 matmuls with and without fast accumulation
# (session35/fp8_accum.py, GPU alone), then the GPU suite as two pytest processes at once.
export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
python3 experiments/2026-11-25_fast-1gpu-h100/session35/fp8_accum.py 2>&1 | tee $OUT/fp8_accum.txt
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1; echo "a rc $?" >> $OUT/gpu_a.txt) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1; echo "b rc $?" >> $OUT/gpu_b.txt) &
wait; tail -2 $OUT/gpu_a.txt $OUT/gpu_b.txt
