#!/usr/bin/env bash
# Part 42, call A (written before any call): the GPU suite on main's final code (acfda4a: the train files scanned once),
# on a fresh machine, in two parallel halves, with the compile caches kept apart from the default folders so that
# call D (session40/callD.sh, next, on this machine) still launches on empty ones. Carry [".data/park"]: it also
# unpacks shards 3-4 + val into /tmp/corpus for call D, which brings shards 0-2.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -n 1 $OUT/setup.txt | cut -c1-160; tail -n 1 $OUT/setup.txt | cut -c1-200
export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 1 $f; done
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
