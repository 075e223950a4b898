#!/usr/bin/env bash
# Part 36, call C (fresh machine): the tiled loss kernel (branch candidates-s36b, .data/cand/tiled.tgz) against main
# (.data/cand/main36.tgz), under the rule in part-36.md fixed before the call. Carry [".data/park", ".data/cand"].
# 1. session36/tiled_ce.py: main's loss kernel + copy against the tiled kernel's shapes; the fastest becomes its default;
# 2. the step at 900 and 999: main, candidate, main; 3. the new GPU tests and the head's on the candidate's code.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
python3 experiments/2026-11-25_fast-1gpu-h100/session36/tiled_ce.py $OUT/tiled_ce.json > $OUT/tiled_ce.txt 2>&1
echo "micro rc $? at $(( $(date +%s) - T0 ))s"; grep -v Warning $OUT/tiled_ce.txt | tail -n 20 | cut -c1-220
use() { rm -rf speedrun tests benchmarks && tar xzf ".data/cand/$1.tgz"
  if [ "$1" = tiled ]; then python3 - "$OUT/tiled_ce.json" <<'PY'
import json, sys, pathlib
bn, bv, w = json.load(open(sys.argv[1]))["best"]
p = pathlib.Path("speedrun/kernels/softcap_ce.py"); s = p.read_text()
old = "block_n: int = 32, block_v: int = 128,\n                                     num_warps: int = 4,"
assert s.count(old) == 1
p.write_text(s.replace(old, f"block_n: int = {bn}, block_v: int = {bv},\n                                     num_warps: int = {w},"))
print("tiled kernel default:", bn, bv, w)
PY
  fi; }
for b in main36 tiled main36b; do
  use ${b%b}
  python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
    --json $OUT/step_$b.json > /tmp/step_$b.txt 2>&1; echo "$b step rc $? at $(( $(date +%s) - T0 ))s"
  tail -n 3 /tmp/step_$b.txt | cut -c1-200
done
use tiled
timeout 150 python3 -m pytest -q tests/gpu/test_gpu.py -s -k "tiled or fused_head or mtp_fused" > $OUT/gpu_tiled.txt 2>&1
echo "gpu tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "tiled vs row|passed|failed|Error" $OUT/gpu_tiled.txt | cut -c1-300
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls step_*.txt)
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {n: {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
        for n in ("main36", "tiled", "main36b") if (out / f"step_{n}.json").exists()}
for n, by in rows.items():
    for at, r in sorted(by.items()):
        base = [rows[m][at]["median_ms"] for m in ("main36", "main36b") if m in rows]
        print(f"| {n} | {at} | {r['median_ms']:.2f} ms | {r['median_ms'] / (sum(base) / len(base)):.4f}x |"
              f" {r['min_ms']:.2f}-{r['max_ms']:.2f} | {r['peak_alloc_gib']:.2f} / {r['peak_reserved_gib']:.2f} GiB |")
PY
