#!/usr/bin/env bash
# Session 11, call 1: GPU tests on HEAD beside three learning-rate variants of fast_1gpu (losses only; concurrent).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
echo "tree: $(cat .data/rev)"; head -3 $OUT/setup.txt
(timeout 470 python3 -m pytest -q tests/gpu -p no:cacheprovider > $OUT/gpu_tests.txt 2>&1; echo "pytest rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 560 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c1 --target 3.41 --parallel 3 \
  emb03:fast_1gpu,lr_embed=0.3 head004:fast_1gpu,lr_head=0.004 muon04:fast_1gpu,muon_lr=0.04 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
wait
tail -2 $OUT/gpu_tests.txt
tail -8 $OUT/ttt.txt
