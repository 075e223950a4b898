#!/usr/bin/env bash
# Part 37, call A (fresh machine, main's code with `_ordered`'s one matmul fewer): the fresh launch of fast_1gpu
# (goal 3), its step at 900 and 999 (goal 2), then the GPU suite as two processes. Carry [".data/park"].
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
git log --oneline -1 2>/dev/null
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
bash benchmarks/gpu_session.sh launch fast_1gpu > /tmp/launch_main.txt 2>&1; mv $OUT/launch.txt.xz /tmp/launch_main_log.txt.xz
cut -c1-200 /tmp/launch_main.txt; echo "launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_main.json > /tmp/step_main.txt 2>&1; echo "step rc $? at $(( $(date +%s) - T0 ))s"
tail -n 12 /tmp/step_main.txt | cut -c1-200
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 2 $f; done
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
tar czf $OUT/logs.tgz -C /tmp launch_main.txt launch_main_log.txt.xz step_main.txt
