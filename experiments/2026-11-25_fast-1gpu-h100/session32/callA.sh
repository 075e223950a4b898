#!/usr/bin/env bash
# Part 32 (planned), call A: a fresh machine (the session's first call), main's tree, carry [".data/corpus", ".data/cand"].
# Make the archive first from branch candidates-s31 (main + Inductor's element-wise kernels compiled with one launch
# configuration, `triton.autotune_pointwise` off, in speedrun/build.py):
#   git archive candidates-s31 speedrun tests benchmarks/step_time.py | gzip > .data/cand/cand_s31.tgz
# 1. Goal 3: the launch of `fast_1gpu` (1000 steps since part 31) as main has it, on the machine's empty compile folders.
#    Part 31: 125.7 s on a first call (Inductor waited 38 s on Triton compiles).
# 2. The candidate's launch, on compile folders of its own.
# 3. The step of both at schedule steps 900 (sampled head, window 1664) and 999 (full softmax, final window 1792).
# Rule, fixed here and applied in call B: the candidate goes to main if its warm-up is at least 8 s shorter than main's
# in this call and in call B (the order reversed there), and its step at 900 and 999 is at most 1.005x main's.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[0-2].bin"
grep -E "^steps" speedrun/recipes/fast.toml
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_main.txt 2>&1; cut -c1-200 $OUT/launch_main.txt | sed -n 4,16p
mv $OUT/launch.txt.xz $OUT/launch_main_log.txt.xz; echo "main launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_main.json > /tmp/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
tar xzf .data/cand/cand_s31.tgz || { echo "NO ARCHIVE"; exit 3; }
grep -n "INDUCTOR_OPTIONS = " speedrun/build.py
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_pw TRITON_CACHE_DIR=/tmp/triton_pw
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_pw.txt 2>&1; cut -c1-200 $OUT/launch_pw.txt | sed -n 4,16p
mv $OUT/launch.txt.xz $OUT/launch_pw_log.txt.xz; echo "pw launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_pw.json > /tmp/step_pw.txt 2>&1; echo "pw step rc $? at $(( $(date +%s) - T0 ))s"
# Where a fresh launch's compile goes: FlexAttention's forward and backward kernels alone, one layer at the track's shape,
# on empty compile folders of their own (if they take most of Inductor's 38-42 s wait, fewer element-wise
# configurations cannot shorten it much)
TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_attn TRITON_CACHE_DIR=/tmp/triton_attn timeout 120 python3 benchmarks/attention.py \
  --configs default --windows 14 --iters 5 --shard /tmp/corpus/corpus_train_000000.bin > /tmp/attention.txt 2>&1
echo "attention compile probe rc $? at $(( $(date +%s) - T0 ))s"; tail -2 /tmp/attention.txt | cut -c1-150
tar czf $OUT/step_logs.tgz -C /tmp step_main.txt step_pw.txt attention.txt
python3 experiments/2026-11-25_fast-1gpu-h100/session32/decide.py A "$OUT" | tee /tmp/s32_A.txt
