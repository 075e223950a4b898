#!/usr/bin/env bash
# Part 24, call D (the session's last device seconds, on a fresh machine; carry [".data/base"]: 800ac2c's Muon, build,
# train and step_time files). Call A's fresh launch took 119.1 s, 26.9 s of it in the optimisers' first step, against
# 4.9 s in part 21's fresh launch (before Muon's step was compiled in three pieces, 056872e). Here both builds launch
# `fast_1gpu` on this machine, each with compile caches of its own, empty (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR),
# 30 steps on random tokens as in call A: "new" (this tree, main's code) and "base" (this tree with 800ac2c's four
# files). Rule, fixed before the run: if base reaches its first timed step at least 10 s sooner than new, the compiled
# momentum and update pieces go (they took 0.6 ms off a 76 ms step in part 23: about 0.7 s of an 1100-step run).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader
echo "default inductor cache folders: $(ls -d /tmp/torchinductor_* 2>/dev/null | wc -l)"
python3 - <<'PY'
import numpy as np, pathlib
from speedrun.data.shards import write_shard
d = pathlib.Path("/tmp/launch"); d.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
write_shard(d / "train_000000.bin", rng.integers(0, 50257, 30 * 49152 + 1, dtype=np.uint16))
write_shard(d / "val_000000.bin", rng.integers(0, 50257, 262144 + 1, dtype=np.uint16))
PY
rm -rf /tmp/base && mkdir /tmp/base && cp -r speedrun benchmarks /tmp/base/ && tar xf .data/base/base.tar -C /tmp/base
grep -c "compile_ns" /tmp/base/speedrun/optim/muon.py speedrun/optim/muon.py
launch() {  # label, tree
  (cd $2 && export PYTHONPATH=$2 TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$1 TRITON_CACHE_DIR=/tmp/tri_$1 &&
   python3 -c "import speedrun; print('speedrun from', speedrun.__file__)" &&
   timeout 230 python3 -m speedrun train --recipe fast_1gpu --set steps=30 --set train_files=/tmp/launch/train_000000.bin \
     --set val_files=/tmp/launch/val_000000.bin --set val_tokens=262144 --set val_every=0 --no-final-checkpoint \
     --print-every 10 --log-dir $OUT/$1) > $OUT/$1.txt 2>&1
  echo "launch $1 rc $? at $(( $(date +%s) - T0 ))s"; head -1 $OUT/$1.txt
  grep -E "warm-up step 1/|launch to first|step +30/30 \| loss|peak" $OUT/$1.txt | cut -c1-200
}
launch new $PWD
launch base /tmp/base
python3 - <<'PY'
import os, re
out = os.environ["OUT"]
got = {}
for n in ("new", "base"):
    text = open(f"{out}/{n}.txt").read()
    m = re.search(r"launch to first timed step: ([\d.]+)s", text)
    o = re.search(r"warm-up step 1/\d+: [\d.]+s \(forward ([\d.]+)s, backward ([\d.]+)s, optimisers ([\d.]+)s\)", text)
    got[n] = float(m.group(1)) if m else None
    print(f"{n:<5} launch {got[n]} s; first step forward / backward / optimisers: {o.groups() if o else None}")
if None not in got.values():
    d = got["new"] - got["base"]
    print(f"new - base: {d:+.1f} s ->", "revert the compiled pieces" if d >= 10 else "keep them")
PY
echo "call D done at $(( $(date +%s) - T0 ))s"
