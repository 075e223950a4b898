#!/usr/bin/env bash
# Part 26 (planned; branch candidates-s26), call A: the session's first call, so a fresh machine (carry [".data/corpus"]
# if call B trains on the track). 1. goal 3 and the sliced validation loss at once: `fast_1gpu` launched on empty
# compile folders, 30 steps on random tokens, then one 262,144-token val row; its "peak memory" line was 27,709 MiB
# (parts 24-25), 24.6 GiB of it the val row's bf16 logits; in step_time.py's training steps the peak is 21.14 GiB.
# 2. the GPU suite on the branch, with tests/gpu/test_val_loss_gpu.py (sliced against one-slice loss and memory).
# The rule, fixed before the run: the sliced loss goes to main if the suite passes and the launch's peak memory is
# under 24,000 MiB.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_summary.txt 2>&1
echo "launch rc $? at $(( $(date +%s) - T0 ))s"; cat $OUT/launch_summary.txt | cut -c1-250 | tail -16
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "val loss in slices" $OUT/gpu_tests.txt | cut -c1-300; tail -2 $OUT/gpu_tests.txt
peak=$(xz -dc $OUT/launch.txt.xz | grep -oE "peak memory: [0-9,]+ MiB" | tr -dc 0-9)
echo "peak ${peak:-?} MiB -> $( [ -n "$peak" ] && [ "$peak" -lt 24000 ] && echo 'sliced val loss: under 24,000 MiB' || echo 'not under 24,000 MiB')"
