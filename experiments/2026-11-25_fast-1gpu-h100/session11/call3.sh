#!/usr/bin/env bash
# Session 12, call 3 (run inline): fast_1gpu with fp8_attn, fast_1gpu and record21_1gpu, each alone, one after another.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -1 $OUT/setup.txt
LIMIT=$(( 570 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c3 --target 3.41 fp8attn:fast_1gpu,fp8_attn=true \
  fast:fast_1gpu record21:record21_1gpu > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -8 $OUT/ttt.txt
