#!/usr/bin/env bash
# Session 11, call 3: fast_1gpu with muon_lr=0.04 and 1000 steps against record21_1gpu, each alone, one after another;
# then a second run of the candidate; then the GPU checkpoint tests alone.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
echo "tree: $(cat .data/rev)"; head -1 $OUT/setup.txt
LIMIT=$(( 545 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c3 --target 3.41 \
  fastm04:fast_1gpu,muon_lr=0.04,steps=1000 record21:record21_1gpu fastm04b:fast_1gpu,muon_lr=0.04,steps=1000 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
tail -8 $OUT/ttt.txt
left=$(( 590 - ($(date +%s) - T0) ))
[ $left -gt 30 ] && timeout $left python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py -p no:cacheprovider > $OUT/ckpt_tests.txt 2>&1; tail -3 $OUT/ckpt_tests.txt
