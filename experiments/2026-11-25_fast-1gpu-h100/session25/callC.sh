#!/usr/bin/env bash
# Part 25, call C (a fresh machine: the first call after the last one was handed back; carry [".data/corpus"]: train
# shards 0-3 + val, unpacked here for call D). Goal 3 on the final code: `fast_1gpu` launched on empty compile
# folders, 30 steps on random tokens (as call A), with TORCH_LOGS=dynamo so that TorchDynamo's compile-time table
# (printed as the process exits) shows where the compile goes.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader
echo "inductor cache folders: $(ls -d /tmp/torchinductor_* 2>/dev/null | wc -l)"
python3 - <<'PY'
import numpy as np, pathlib
from speedrun.data.shards import write_shard
d = pathlib.Path("/tmp/launch"); d.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
write_shard(d / "train_000000.bin", rng.integers(0, 50257, 30 * 49152 + 1, dtype=np.uint16))
write_shard(d / "val_000000.bin", rng.integers(0, 50257, 262144 + 1, dtype=np.uint16))
PY
TORCH_LOGS=dynamo timeout 230 speedrun train --recipe fast_1gpu --set steps=30 --set train_files=/tmp/launch/train_000000.bin \
  --set val_files=/tmp/launch/val_000000.bin --set val_tokens=262144 --set val_every=0 --no-final-checkpoint \
  --print-every 10 --log-dir $OUT/launch > $OUT/launch.txt 2>&1
echo "launch run rc $? at $(( $(date +%s) - T0 ))s"
grep -E "^warm-up|launch to first|step +30/30|peak" $OUT/launch.txt | cut -c1-250 | tail -6
grep -A40 "TorchDynamo compilation metrics" $OUT/launch.txt | grep -vE "^\s*$" | cut -c1-160 | head -40
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
xz -9 $OUT/launch.txt
echo "call C done at $(( $(date +%s) - T0 ))s"
