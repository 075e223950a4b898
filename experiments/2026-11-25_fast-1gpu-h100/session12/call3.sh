#!/usr/bin/env bash
# Part 13 (prepared in part 12, not yet run), call 3 (carry [".data"]): fast_1gpu with FlashAttention-4's kernels, fast_1gpu and record21_1gpu,
# each alone, one after another (FlashAttention-4 from .fa4site, unpacked in call 2 on this machine).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTHONPATH=$PWD:$PWD/.fa4site:$PWD/.fa4site/nvidia_cutlass_dsl/dsl_packages
ls .fa4site | head -3
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -1 $OUT/setup.txt
LIMIT=$(( 575 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c3 --target 3.41 flash:fast_1gpu,attention_kernel=flash \
  fast:fast_1gpu record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -8 $OUT/ttt.txt
