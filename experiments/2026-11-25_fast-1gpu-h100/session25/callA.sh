#!/usr/bin/env bash
# Part 25 (planned), call A (the session's first call, so a fresh machine; carry [".data/corpus"]: train shards 0-3 + val,
# unpacked here for calls B and C):
# 1. goal 3: `fast_1gpu` launched on empty compile folders, 30 steps on random tokens (as part 21's call D);
# 2. goal 2 and the candidate `compile = "graphs"` (forward and backward as CUDA graphs, mode="reduce-overhead"):
#    `benchmarks/step_time.py --steps 30` (synthetic tokens, each run alone), fast_1gpu and fast_1gpu,compile=graphs
#    alternating twice, the second of each profiled; then record21_1gpu once (goal 2 asks for it in the same call).
# The rule, fixed here before the runs: compile=graphs goes on to a loss check if its final-window step is at
# least 1% under fast_1gpu's in both pairs (decision written to /tmp/s24/decision for calls B and C).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
mkdir -p /tmp/s24
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader
ls /tmp/torchinductor_* 2>/dev/null | head -2; echo "inductor cache folders: $(ls -d /tmp/torchinductor_* 2>/dev/null | wc -l)"
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
  --print-every 10 --log-dir $OUT/launch > $OUT/launch.txt 2>&1
echo "launch run rc $? at $(( $(date +%s) - T0 ))s"
grep -E "warm-up|launch to first|step +30/30|val_loss|peak" $OUT/launch.txt | cut -c1-250 | tail -6
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
st() {  # label, recipe, extra args
  timeout 200 python3 benchmarks/step_time.py --recipe $2 --steps 30 "${@:3}" --json /tmp/s24/st_$1.json > /tmp/s24/st_$1.txt 2>&1
  echo "step_time $1 rc $? at $(( $(date +%s) - T0 ))s"; tail -2 /tmp/s24/st_$1.txt | cut -c1-200
}
st base1 fast_1gpu
st gr1 fast_1gpu --set compile=graphs
st base2 fast_1gpu --profile
st gr2 fast_1gpu --set compile=graphs --profile
st r21 record21_1gpu
for n in base2 gr2; do grep -E "Muon.step|GPU idle|total \(GPU" /tmp/s24/st_$n.txt | cut -c1-200; done
python3 - <<'PY'
import json
rows = {}
print(f"{'run':<7}{'ms first':>10}{'ms final':>10}{'peak GiB':>10}{'busy':>8}")
for n in ["base1", "gr1", "base2", "gr2", "r21"]:
    try:
        r = json.load(open(f"/tmp/s24/st_{n}.json"))
        rows[n] = r["rows"][-1]["median_ms"]
        cells = "".join(f"{x['median_ms']:>10.2f}" for x in r["rows"])
        print(f"{n:<7}{cells}{r['rows'][-1]['peak_alloc_gib']:>10.2f}{r.get('gpu_busy_ms_per_step', float('nan')):>8.2f}")
    except Exception as e:
        print(n, "no result:", repr(e)[:120])
try:
    ratios = [rows["gr1"] / rows["base1"], rows["gr2"] / rows["base2"]]
    go = all(x <= 0.99 for x in ratios)
except KeyError:
    ratios, go = [], False
print("compile=graphs / base at the final window:", " ".join(f"{x:.4f}" for x in ratios), "-> loss check" if go else "-> dropped")
open("/tmp/s24/decision", "w").write("graphs" if go else "base")
PY
cp /tmp/s24/st_*.txt /tmp/s24/st_*.json $OUT/ 2>/dev/null; cd $OUT && tar cJf st.tar.xz st_*.txt st_*.json && rm -f st_*.txt st_*.json
echo "call A done at $(( $(date +%s) - T0 ))s"
