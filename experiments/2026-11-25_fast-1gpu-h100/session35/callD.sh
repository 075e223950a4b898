#!/usr/bin/env bash
# Part 35, call D (the machine of call C, warm; carry [".data/cand"]): the GPU suite on the AOTAutograd-cache
# candidate's code (.data/cand/aot.tgz = branch candidates-s34, 5d07403), two pytest processes at once.
rm -rf speedrun tests benchmarks && tar xzf .data/cand/aot.tgz && python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=uuid --format=csv,noheader; grep -c autograd_cache_allow speedrun/build.py
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1; echo "a rc $?" >> $OUT/gpu_a.txt) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1; echo "b rc $?" >> $OUT/gpu_b.txt) &
wait; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 2 $f; done
