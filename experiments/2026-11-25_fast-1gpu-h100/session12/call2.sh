#!/usr/bin/env bash
# Part 13 (prepared in part 12, not yet run), call 2 (carry [".fa4/b"]): unpack the FlashAttention-4 bundle (flash-attn-4 4.0.0b36, nvidia-cutlass-dsl
# 4.8.1 cu13, quack-kernels, apache-tvm-ffi, torch-c-dlpack-ext) into .fa4site, then FlexAttention FLASH vs Triton:
# one layer (attention.py), the GPU test, and fast_1gpu's step at both kernels (step_time.py, synthetic tokens).
T0=$(date +%s)
export PYTHONUNBUFFERED=1
ls -la .fa4store .fa4/b
if [ ! -d .fa4site/flash_attn ]; then
  cat .fa4store/part.00 .fa4/b/part.01 > /tmp/fa4.tar.xz
  echo "sha256 $(sha256sum /tmp/fa4.tar.xz | cut -c1-64) want $(cat .fa4/b/sha256)"
  mkdir -p .fa4site && xz -dc /tmp/fa4.tar.xz | tar x -C .fa4site
fi
export PYTHONPATH=$PWD:$PWD/.fa4site:$PWD/.fa4site/nvidia_cutlass_dsl/dsl_packages
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
python3 -c "import flash_attn.cute.interface, cutlass; from speedrun.model.attention import flash_kernels_available as f; print('flash_attn.cute imports; available:', f())" 2>&1 | tail -3
echo "install done at $(( $(date +%s) - T0 ))s"
timeout 200 python3 benchmarks/attention.py --shard none --windows 7,14 --configs default,flash --iters 10 --budget 150 --fa4-varlen \
  --json $OUT/attention.json > $OUT/attention.txt 2>&1; tail -5 $OUT/attention.txt
echo "attention done at $(( $(date +%s) - T0 ))s"
timeout 120 python3 -m pytest -q tests/gpu/test_gpu.py -k flash -p no:cacheprovider -s > $OUT/flash_test.txt 2>&1; grep -E "loss|passed|failed|Error" $OUT/flash_test.txt | tail -4
for k in triton flash; do
  left=$(( 585 - ($(date +%s) - T0) )); [ $left -lt 60 ] && break
  timeout $left python3 benchmarks/step_time.py --recipe fast_1gpu --set attention_kernel=$k --steps 30 \
    --json $OUT/st_$k.json > $OUT/st_$k.txt 2>&1; echo "step_time $k rc $?"; tail -6 $OUT/st_$k.txt
done
