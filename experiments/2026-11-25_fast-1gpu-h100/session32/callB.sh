#!/usr/bin/env bash
# Part 32 (planned), call B (call A's machine; carry [".data/cand"]): the three launches again, on new empty compile
# folders, in the reverse order (regions, pw, then main), so that no build always has the warmer machine; then
# FlexAttention's compile alone. The rules are in decide.py; the decision is left in /tmp/s32_decision for call C.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
[ -f /tmp/s32_A.json ] || { echo "NOT CALL A'S MACHINE: no /tmp/s32_A.json"; exit 3; }
rm -rf /tmp/main_speedrun && cp -r speedrun /tmp/main_speedrun
for c in regions pw main; do
  rm -rf speedrun && cp -r /tmp/main_speedrun speedrun
  [ $c = main ] || tar xzf .data/cand/cand_$c.tgz || { echo "NO ARCHIVE $c"; exit 3; }
  grep -c "^INDUCTOR_OPTIONS = \|^def share_block_regions" speedrun/build.py
  left=$(( 500 - ($(date +%s) - T0) )); [ $left -gt 60 ] || { echo "no time left for $c"; continue; }
  TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_${c}2 TRITON_CACHE_DIR=/tmp/triton_${c}2 timeout $left bash benchmarks/gpu_session.sh \
    launch fast_1gpu > $OUT/launch_${c}2.txt 2>&1; cut -c1-200 $OUT/launch_${c}2.txt | sed -n 4,8p
  pkill -f "speedrun train" 2>/dev/null
  mv $OUT/launch.txt.xz $OUT/launch_${c}2_log.txt.xz; echo "$c launch done at $(( $(date +%s) - T0 ))s"
done
# FlexAttention's forward and backward kernels alone, one layer at the track's shape, on empty compile folders of their
# own: how much of Inductor's wait on Triton compiles they are (a slow kernel on one worker bounds the wait)
TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_attn TRITON_CACHE_DIR=/tmp/triton_attn timeout 120 python3 benchmarks/attention.py \
  --configs default --windows 14 --iters 5 --shard /tmp/corpus/corpus_train_000000.bin > $OUT/attention.txt 2>&1
echo "attention compile probe rc $? at $(( $(date +%s) - T0 ))s"; tail -2 $OUT/attention.txt | cut -c1-150
cp /tmp/s32_A.json $OUT/
python3 experiments/2026-11-25_fast-1gpu-h100/session32/decide.py B "$OUT"
