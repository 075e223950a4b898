#!/usr/bin/env bash
# Part 13 (prepared in part 12, not yet run), optional first call (carry [".data"]): the GPU tests beside three
# schedule variants of fast_1gpu (losses only; concurrent). The corpus stays unpacked in /tmp/corpus for call 3.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1
head -3 $OUT/setup.txt
(timeout 500 python3 -m pytest -q tests/gpu -p no:cacheprovider -rf > $OUT/gpu_tests.txt 2>&1; echo "pytest rc $? at $(( $(date +%s) - T0 ))s" >> $OUT/gpu_tests.txt) &
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=$(( 570 - ($(date +%s) - T0) )) bash benchmarks/gpu_session.sh ttt c0 --target 3.41 --parallel 3 \
  mtp03:fast_1gpu,mtp_end_frac=0.3 mtpw:fast_1gpu,mtp_weights=[0.6,0.3] mom097:fast_1gpu,muon_momentum=0.97 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"
wait
tail -4 $OUT/gpu_tests.txt
tail -7 $OUT/ttt.txt
