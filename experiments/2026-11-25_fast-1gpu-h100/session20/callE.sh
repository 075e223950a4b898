#!/usr/bin/env bash
# Part 20, call E (no carry: 30 steps on random tokens, since a launch does not depend on the data): `compile = tuned`
# with a compile cache file.
# E1: `fast_1gpu --set compile=tuned`, empty Inductor and Triton folders, writing its artifacts to a file (the slow,
#     once-per-setup compile). E2: the same launch, empty folders again, loading that file first.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
python3 - <<'PY'
# random tokens for 30 steps and a short validation: a launch costs the same on any data
import numpy as np, pathlib
from speedrun.data.shards import write_shard
d = pathlib.Path("/tmp/launch"); d.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
write_shard(d / "train_000000.bin", rng.integers(0, 50257, 30 * 49152 + 1, dtype=np.uint16))
write_shard(d / "val_000000.bin", rng.integers(0, 50257, 262144 + 1, dtype=np.uint16))
PY
ARGS=(--recipe fast_1gpu --set compile=tuned --set steps=30 --set train_files=/tmp/launch/train_000000.bin
      --set val_files=/tmp/launch/val_000000.bin --set val_tokens=262144 --set val_every=0
      --no-final-checkpoint --print-every 10 --compile-cache /tmp/cce/fast_1gpu_tuned.cache)
mkdir -p /tmp/cce
TORCHINDUCTOR_CACHE_DIR=/tmp/cce/inductor1 TRITON_CACHE_DIR=/tmp/cce/triton1 timeout 470 speedrun train "${ARGS[@]}" \
  --log-dir $OUT/e1 > $OUT/e1.txt 2>&1
echo "E1 rc $? at $(( $(date +%s) - T0 ))s"; ls -la /tmp/cce | grep cache
left=$(( 585 - ($(date +%s) - T0) ))
TORCHINDUCTOR_CACHE_DIR=/tmp/cce/inductor2 TRITON_CACHE_DIR=/tmp/cce/triton2 timeout $left speedrun train "${ARGS[@]}" \
  --log-dir $OUT/e2 > $OUT/e2.txt 2>&1
echo "E2 rc $? at $(( $(date +%s) - T0 ))s"
for a in e1 e2; do echo "== $a"; grep -E "compile cache|compiled graphs|warm-up:|launch|ms/step|val_loss|peak" $OUT/$a.txt | tail -8 | cut -c1-260; done
