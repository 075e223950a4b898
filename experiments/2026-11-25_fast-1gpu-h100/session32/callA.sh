#!/usr/bin/env bash
# Part 32 (planned), call A: a fresh machine (the session's first call), main's tree, carry [".data/corpus", ".data/cand"].
# Make the archives first (each branch is main + one candidate; both: main + the two):
#   git archive candidates-s31 speedrun tests benchmarks/step_time.py | gzip > .data/cand/cand_pw.tgz
#   git archive candidates-s31-regions speedrun tests benchmarks/step_time.py | gzip > .data/cand/cand_regions.tgz
#   git archive candidates-s31-both speedrun tests benchmarks/step_time.py | gzip > .data/cand/cand_both.tgz
# 1. Goal 3: the launch of `fast_1gpu` (1000 steps since part 31) as main has it, on the machine's empty compile folders.
#    Part 31: 125.7 s on a first call (Inductor waited 38 s on Triton compiles; the trunk's forward graph took 58.8 s).
# 2. pw: Inductor's element-wise kernels with one launch configuration (`triton.autotune_pointwise` off).
# 3. regions: blocks compiled as nested regions shared by kind (`speedrun.build.share_block_regions`; 6 kinds for
#    fast's 12 blocks), with Inductor's in-place and reused buffers off (wrong gradients on the CPU with them on).
#    On this CPU (session31/cpu_region_kinds_probe.py, 12 small layers) the first compile took 37.8 against 46.4 s
#    (torch 2.13) and 48.7 against 53.7 s (torch 2.11), gradients as the eager model's. Not yet run on a GPU, where
#    FlexAttention and the FP8 custom ops run inside the regions.
# Each candidate's launch on compile folders of its own, then its step at schedule steps 900 (sampled head, window 1664)
# and 999 (full softmax, final window 1792). The rules are in decide.py (applied in call B). At most 8 files to $OUT.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[0-2].bin"
grep -E "^steps" speedrun/recipes/fast.toml; rm -rf /tmp/main_speedrun && cp -r speedrun /tmp/main_speedrun
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_main.txt 2>&1; cut -c1-200 $OUT/launch_main.txt | sed -n 4,16p
mv $OUT/launch.txt.xz /tmp/launch_main_log.txt.xz; echo "main launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_main.json > /tmp/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
for c in pw regions; do
  rm -rf speedrun && cp -r /tmp/main_speedrun speedrun && tar xzf .data/cand/cand_$c.tgz || { echo "NO ARCHIVE $c"; exit 3; }
  grep -n "^INDUCTOR_OPTIONS = \|^def share_block_regions" speedrun/build.py
  left=$(( 540 - ($(date +%s) - T0) )); [ $left -gt 60 ] || { echo "no time left for $c"; break; }
  TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_$c TRITON_CACHE_DIR=/tmp/triton_$c timeout $left bash benchmarks/gpu_session.sh \
    launch fast_1gpu > $OUT/launch_$c.txt 2>&1; cut -c1-200 $OUT/launch_$c.txt | sed -n 4,8p; grep -m3 -E "Error|error:" $OUT/launch_$c.txt | cut -c1-300
  pkill -f "speedrun train" 2>/dev/null  # a launch cut short by the timeout leaves no trainer behind
  mv $OUT/launch.txt.xz /tmp/launch_${c}_log.txt.xz; echo "$c launch done at $(( $(date +%s) - T0 ))s"
  left=$(( 570 - ($(date +%s) - T0) )); [ $left -gt 30 ] || { echo "no time left for the step of $c"; break; }
  TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_$c TRITON_CACHE_DIR=/tmp/triton_$c timeout $left python3 benchmarks/step_time.py \
    --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 --json $OUT/step_$c.json > /tmp/step_$c.txt 2>&1
  echo "$c step rc $? at $(( $(date +%s) - T0 ))s"
done
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls step_main.txt step_pw.txt step_regions.txt launch_main_log.txt.xz \
  launch_pw_log.txt.xz launch_regions_log.txt.xz 2>/dev/null)
python3 experiments/2026-11-25_fast-1gpu-h100/session32/decide.py A "$OUT"
