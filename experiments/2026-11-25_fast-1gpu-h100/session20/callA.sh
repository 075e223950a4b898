#!/usr/bin/env bash
# Part 20, call A (carry [".data/park"]: train shard 4 + val), the session's first call on a fresh machine.
# A1: `fast_1gpu` launched on empty compile caches (goal 3), writing its compile artifacts to a cache file at the end.
# A2: the same launch with empty Inductor and Triton folders again, the cache file loaded first (--compile-cache):
#     what a fresh machine that brings the file pays. 30 steps on shard 4: the launch does not depend on the data.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-200
echo "setup done at $(( $(date +%s) - T0 ))s"
ARGS=(--recipe fast_1gpu --set steps=30 --set train_files=/tmp/corpus/corpus_train_000004.bin
      --set val_files=/tmp/corpus/corpus_val_000000.bin --set val_tokens=262144 --set val_every=0
      --no-final-checkpoint --print-every 10 --compile-cache /tmp/cc/fast_1gpu.cache)
mkdir -p /tmp/cc
timeout 300 speedrun train "${ARGS[@]}" --log-dir $OUT/a1 > $OUT/a1.txt 2>&1
echo "A1 rc $? at $(( $(date +%s) - T0 ))s"; ls -la /tmp/cc
TORCHINDUCTOR_CACHE_DIR=/tmp/cc/inductor2 TRITON_CACHE_DIR=/tmp/cc/triton2 timeout 250 speedrun train "${ARGS[@]}" \
  --log-dir $OUT/a2 > $OUT/a2.txt 2>&1
echo "A2 rc $? at $(( $(date +%s) - T0 ))s"
for a in a1 a2; do echo "== $a"; grep -E "compile cache|compiled graphs|warm-up:|launch|val_loss|peak" $OUT/$a.txt | cut -c1-260; done
