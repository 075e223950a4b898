#!/usr/bin/env bash
# Prepared in part 13 for the next session, call C (carry [".data"]), after nextB.sh on the same machine (FlashAttention-4
# in /tmp/fa4site): fast_1gpu with attention_kernel = fa4, fast_1gpu and record21_1gpu, each alone, to val 3.41.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
export PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages
[ -d /tmp/fa4site/flash_attn ] || echo "nextC: no /tmp/fa4site on this machine (a new one?): the fa4 run will refuse" >&2
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -1 $OUT/setup.txt
LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c3 --target 3.41 fa4:fast_1gpu,attention_kernel=fa4 \
  fast:fast_1gpu record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt
