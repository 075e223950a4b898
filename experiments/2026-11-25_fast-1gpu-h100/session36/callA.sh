#!/usr/bin/env bash
# Part 36, call A (fresh machine): CUDA graphs for the step's forward and backward (speedrun/graphs.py, recipe field
# cuda_graphs) against main's eager step, under the rule in part-36.md fixed before the call. Carry [".data/park"].
# 1. a fresh launch of fast_1gpu with cuda_graphs=true (empty compile folders: goal 3);
# 2. the step, benchmarks/step_time.py --steps 30 on train shards 3-4 at steps 900 and 999: main, graphs, main;
# 3. the GPU test of the graphed run against the eager run.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
bash benchmarks/gpu_session.sh launch fast_1gpu --set cuda_graphs=true > /tmp/launch_graphs.txt 2>&1
mv $OUT/launch.txt.xz /tmp/launch_graphs_log.txt.xz
cat /tmp/launch_graphs.txt | cut -c1-200; echo "launch done at $(( $(date +%s) - T0 ))s"
for b in main graphs main2; do
  flag=false; [ $b = graphs ] && flag=true
  python3 benchmarks/step_time.py --recipe fast_1gpu --set cuda_graphs=$flag --steps 30 --shards "$S" --at-step 900 \
    --at-step 999 --json $OUT/step_$b.json > /tmp/step_$b.txt 2>&1; echo "$b step rc $? at $(( $(date +%s) - T0 ))s"
  tail -n 4 /tmp/step_$b.txt | cut -c1-200
done
python3 -m pytest -q tests/gpu/test_graphs_gpu.py -s > $OUT/gpu_graphs.txt 2>&1
echo "gpu test rc $? at $(( $(date +%s) - T0 ))s"; grep -E "graphed vs eager|passed|failed|Error" $OUT/gpu_graphs.txt | cut -c1-400
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls launch_graphs*.txt* step_*.txt 2>/dev/null)
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {n: {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
        for n in ("main", "graphs", "main2") if (out / f"step_{n}.json").exists()}
for n, by in rows.items():
    for at, r in sorted(by.items()):
        base = [rows[m][at]["median_ms"] for m in ("main", "main2") if m in rows]
        print(f"| {n} | {at} | {r['median_ms']:.2f} ms | {r['median_ms'] / (sum(base) / len(base)):.4f}x |"
              f" {r['min_ms']:.2f}-{r['max_ms']:.2f} | {r['peak_alloc_gib']:.2f} / {r['peak_reserved_gib']:.2f} GiB |")
PY
