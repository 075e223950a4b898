#!/usr/bin/env bash
# Part 42, call E (written after call C could not start: 618 s of device time left, too few for call C's ~620 s with a
# start): the GPU suite on main's final commit (acfda4a's training code, plus the command line's changes after it:
# the resume folder, `compare BASE CHANGE`, `sample --max-new-tokens`), on a fresh machine, in two parallel halves.
# No carry: the suite makes its own data.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -n 1 $OUT/setup.txt | cut -c1-160
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 1 $f; done
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
