#!/usr/bin/env bash
# Part 34, call C (warm machine after call B, the working tree with the sort-free block lists): the GPU suite as two
# pytest processes at once. Call D (same machine) then ran the traced launch on empty compile folders:
#   TORCHINDUCTOR_CACHE_DIR=/tmp/ind_t TRITON_CACHE_DIR=/tmp/tri_t TRACE=1 bash benchmarks/gpu_session.sh launch fast_1gpu
export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=uuid --format=csv,noheader
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1; echo "a rc $?" >> $OUT/gpu_a.txt) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1; echo "b rc $?" >> $OUT/gpu_b.txt) &
wait
