#!/usr/bin/env bash
# Session 12, call 2: four more variants of fast_1gpu at once (losses only; concurrent).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
echo "tree: $(cat .data/rev)"; head -1 $OUT/setup.txt
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 585 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c2 --target 3.41 --parallel 4 \
  cd06:fast_1gpu,cooldown_frac=0.6 minlr0:fast_1gpu,min_lr_frac=0.0 b40k:fast_1gpu,batch_tokens=40960,seq_len=40960,steps=1175 mtp075:fast_1gpu,mtp_end_frac=0.75 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
tail -8 $OUT/ttt.txt
