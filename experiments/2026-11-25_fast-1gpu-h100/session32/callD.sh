#!/usr/bin/env bash
# Part 32 (planned), call D (call A's machine; carry [".data/cand"]), only if call B's decision is "both": the launch
# of main + both candidates on new empty compile folders (the two were measured apart), and its step at 900 and 999.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[0-2].bin"
[ "$(cat /tmp/s32_decision 2>/dev/null)" = both ] || { echo "decision is not both: nothing to do"; exit 0; }
tar xzf .data/cand/cand_both.tgz && grep -n "^INDUCTOR_OPTIONS = \|^def share_block_regions" speedrun/build.py
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_both TRITON_CACHE_DIR=/tmp/triton_both
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_both.txt 2>&1; cut -c1-200 $OUT/launch_both.txt | sed -n 4,16p
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_both.json > $OUT/step_both.txt 2>&1; echo "both step rc $? at $(( $(date +%s) - T0 ))s"
tail -4 $OUT/step_both.txt | cut -c1-200
