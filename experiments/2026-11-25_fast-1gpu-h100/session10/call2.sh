#!/usr/bin/env bash
# Session 11, call 2: four more learning-rate variants of fast_1gpu at once (losses only; concurrent).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
echo "tree: $(cat .data/rev)"; head -1 $OUT/setup.txt
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c2 --target 3.41 --parallel 4 \
  muon03:fast_1gpu,muon_lr=0.03 head012:fast_1gpu,lr_head=0.012 m04h012:fast_1gpu,muon_lr=0.04,lr_head=0.012 m04s1000:fast_1gpu,muon_lr=0.04,steps=1000 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
tail -8 $OUT/ttt.txt
