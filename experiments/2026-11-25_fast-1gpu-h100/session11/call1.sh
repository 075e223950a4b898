#!/usr/bin/env bash
# Session 12, call 1: GPU tests on HEAD beside three variants of fast_1gpu (losses only; concurrent).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
echo "tree: $(cat .data/rev)"; head -3 $OUT/setup.txt
(timeout 500 python3 -m pytest -q tests/gpu -p no:cacheprovider -rf > $OUT/gpu_tests.txt 2>&1; echo "pytest rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 570 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c1 --target 3.41 --parallel 3 \
  fp8attn:fast_1gpu,fp8_attn=true win1280:fast_1gpu,window_ramp_tokens=1280 mw150:fast_1gpu,muon_momentum_warmup_steps=150 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
wait
tail -4 $OUT/gpu_tests.txt
tail -8 $OUT/ttt.txt
