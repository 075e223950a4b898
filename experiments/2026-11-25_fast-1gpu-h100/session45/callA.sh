#!/usr/bin/env bash
# Part 45, call A: main's final code on a (fresh) lent machine.
# 1. `gpu_session.sh launch`: fast_1gpu's launch on empty compile folders (goal 3), now on Zipf-distributed synthetic
#    tokens, so its 30 steps end cleanly (uniform ids hold more distinct targets than the sampled head's rows).
# 2. uniform random tokens: `speedrun train --recipe fast_1gpu` must stop before any work, with the host's row count.
# 3. `gpu_session.sh suite`: tests/gpu in two parallel halves, compile folders of their own.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch > $OUT/launch_summary.txt 2>&1; echo "launch rc $? at $(( $(date +%s) - T0 ))s"
grep -vE "^(Function|bytecode|aot|compile_fx|GraphLow|async|Caching)" $OUT/launch_summary.txt | cut -c1-200
xz -dc $OUT/launch.txt.xz | grep -E "^step|error|peak" | cut -c1-200
python3 - <<'PY'
import numpy as np
from speedrun.data.shards import write_shard
rng = np.random.default_rng(0)
write_shard("/tmp/uniform_train_000000.bin", rng.integers(0, 50257, 30 * 49152 + 1, dtype=np.uint16))
write_shard("/tmp/uniform_val_000000.bin", rng.integers(0, 50257, 262144 + 1, dtype=np.uint16))
PY
t=$(date +%s); timeout 120 speedrun train --recipe fast_1gpu --set steps=30 --set train_files=/tmp/uniform_train_000000.bin \
  --set val_files=/tmp/uniform_val_000000.bin --set val_tokens=262144 --log-dir /tmp/uniform_logs > $OUT/uniform.txt 2>&1
echo "uniform tokens: rc $? in $(( $(date +%s) - t ))s; run logs written: $(ls /tmp/uniform_logs 2>/dev/null | wc -l)"; tail -n 2 $OUT/uniform.txt | cut -c1-300
bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 2; echo "suite done at $(( $(date +%s) - T0 ))s"
