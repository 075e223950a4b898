#!/usr/bin/env bash
# Part 33, call C (any machine; carry [".data/cand"] when `part` passed its rule): the GPU suite on the code main will
# have, as two pytest processes at once (tests/gpu/test_gpu.py | the other four files). DECISION=keep uses the branch.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
if [ "${DECISION:-main}" = keep ]; then rm -rf speedrun tests benchmarks && tar xzf .data/cand/cand.tgz || exit 3; fi
grep -n "^sampled_head" speedrun/recipes/fast.toml
python3 -m pip install -q --no-deps -e . > /dev/null 2>&1; nvidia-smi --query-gpu=name,uuid --format=csv,noheader
python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1 &
A=$!
python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py -s > $OUT/gpu_b.txt 2>&1 &
B=$!
wait $A; echo "test_gpu.py rc $? at $(( $(date +%s) - T0 ))s"; wait $B; echo "other four rc $? at $(( $(date +%s) - T0 ))s"
tail -1 $OUT/gpu_a.txt; tail -1 $OUT/gpu_b.txt; grep -h "partial full softmax\|sampled head, compiled\|full softmax:" $OUT/gpu_b.txt
