#!/usr/bin/env bash
# Part 21, call D (no carry; a fresh machine): `fast_1gpu` (the default build) for 30 steps on random tokens, the data
# on which part 20's tuned build stopped at a NaN loss at step 2: does the default build train there? Its launch on
# a machine with empty compile folders is also goal 3's figure.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
python3 - <<'PY'
import numpy as np, pathlib
from speedrun.data.shards import write_shard
d = pathlib.Path("/tmp/launch"); d.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
write_shard(d / "train_000000.bin", rng.integers(0, 50257, 30 * 49152 + 1, dtype=np.uint16))
write_shard(d / "val_000000.bin", rng.integers(0, 50257, 262144 + 1, dtype=np.uint16))
PY
timeout 230 speedrun train --recipe fast_1gpu --set steps=30 --set train_files=/tmp/launch/train_000000.bin \
  --set val_files=/tmp/launch/val_000000.bin --set val_tokens=262144 --set val_every=0 --no-final-checkpoint \
  --print-every 1 --log-dir $OUT/d > $OUT/d.txt 2>&1
echo "train rc $? at $(( $(date +%s) - T0 ))s"
grep -E "warm-up|launch|step +[0-9]+/30 \| loss|val_loss|peak|rror|NaN" $OUT/d.txt | cut -c1-200 | tail -45
