#!/usr/bin/env bash
# Part 13, call B (carry [".fa4/b"]), right after call A on the same machine: join and unpack the bundle into /tmp/fa4site,
# check that flash_attn.cute imports, then FlexAttention FLASH vs Triton: one layer (attention.py, also FA4's own
# varlen kernel), the GPU test, and the step of fast_1gpu at both kernels and of record21_1gpu (step_time.py).
T0=$(date +%s); export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh
echo "PYTHONPATH=$PYTHONPATH" > $OUT/env.txt
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
python3 -c "import cutlass.cute, flash_attn.cute.interface; from speedrun.model.attention import flash_kernels_available as f; print('flash_attn.cute imports; available:', f())" 2>&1 | tail -3
echo "install done at $(( $(date +%s) - T0 ))s"
timeout 200 python3 benchmarks/attention.py --shard none --windows 7,14 --configs default,flash --iters 10 --budget 150 --fa4-varlen \
  --json $OUT/attention.json > $OUT/attention.txt 2>&1; tail -5 $OUT/attention.txt | cut -c1-400
echo "attention done at $(( $(date +%s) - T0 ))s"
timeout 150 python3 -m pytest -q tests/gpu/test_gpu.py -k flash -p no:cacheprovider -s > $OUT/flash_test.txt 2>&1; grep -E "loss|passed|failed|Error" $OUT/flash_test.txt | tail -4 | cut -c1-400
for v in fast_1gpu:flash fast_1gpu:triton record21_1gpu:triton; do
  r=${v%%:*}; k=${v##*:}; left=$(( 590 - ($(date +%s) - T0) )); [ $left -lt 70 ] && break
  timeout $left python3 benchmarks/step_time.py --recipe $r --set attention_kernel=$k --steps 30 \
    --json $OUT/st_${r}_$k.json > $OUT/st_${r}_$k.txt 2>&1; echo "step_time $r $k rc $?"; tail -4 $OUT/st_${r}_$k.txt | cut -c1-300
done
