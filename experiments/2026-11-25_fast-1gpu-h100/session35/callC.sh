#!/usr/bin/env bash
# Part 35, call C (fresh machine): the AOTAutograd-cache candidate (branch candidates-s34, .data/cand/aot.tgz) against
# main (.data/cand/main.tgz), under the rule in part-35.md fixed before the call: a fresh launch of each on its own
# empty compile folders, one warm pair in the other order than call A's (aot first), then each build's step.
# Carry [".data/park", ".data/cand"].
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
use() { rm -rf speedrun tests benchmarks && tar xzf ".data/cand/$1.tgz" && python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
  if [ "$1" = aot ]; then export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_a TRITON_CACHE_DIR=/tmp/tri_a
  else export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_m TRITON_CACHE_DIR=/tmp/tri_m; fi; }
launch() {  # launch BUILD KIND
  use $1; bash benchmarks/gpu_session.sh launch fast_1gpu > /tmp/launch_$1_$2.txt 2>&1; mv $OUT/launch.txt.xz /tmp/launch_$1_$2_log.txt.xz
  echo "$1 $2: $(grep 'launch to first' /tmp/launch_$1_$2.txt | grep -o '[0-9.]*s' | head -1)" \
    "aot_trace_joint_graph $(grep -c aot_trace_joint_graph /tmp/launch_$1_$2.txt) at $(( $(date +%s) - T0 ))s" | tee -a $OUT/launches.txt
}
launch main fresh; launch aot fresh; launch aot warm; launch main warm
for b in main aot; do
  use $b; python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
    --json $OUT/step_$b.json > /tmp/step_$b.txt 2>&1; echo "$b step rc $? at $(( $(date +%s) - T0 ))s"
done
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls launch_*.txt launch_*_log.txt.xz step_*.txt 2>/dev/null)
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {n: {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
        for n in ("main", "aot") if (out / f"step_{n}.json").exists()}
for n, by in rows.items():
    for at, r in sorted(by.items()):
        print(f"| {n} | {at} | {r['median_ms']:.2f} ms | {r['median_ms'] / rows['main'][at]['median_ms']:.4f}x | {r['peak_alloc_gib']:.2f} GiB |")
PY
