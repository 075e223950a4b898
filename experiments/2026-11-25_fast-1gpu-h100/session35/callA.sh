#!/usr/bin/env bash
# Part 35, call A: this script ran as session34/next_candidates.sh (copied here unchanged below this line).
# For the next session (not run in part 34): both part-34 candidates against main in one call on a fresh machine.
# Prepare here: mkdir -p .data/cand && git archive main speedrun tests benchmarks | gzip > .data/cand/main.tgz
#   git archive candidates-s34 speedrun tests benchmarks | gzip > .data/cand/aot.tgz
#   git archive candidates-s34b speedrun tests benchmarks | gzip > .data/cand/relu2.tgz
# and run with carry [".data/park", ".data/cand"]. The rules are in part-34.md (fixed before any GPU call):
#   aot (candidates-s34): warm launch >= 5 s shorter than main's, fresh launch <= 2 s longer, step 0.995-1.005x;
#   relu2 (candidates-s34b): step <= 0.995x main's at steps 900 and 999; peak checked in training later.
# Each passing candidate then needs the GPU suite on its code before it lands.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-200
use() { rm -rf speedrun tests benchmarks && tar xzf ".data/cand/$1.tgz" && python3 -m pip install -q --no-deps -e . >/dev/null 2>&1; }
launch() {  # launch NAME: a launch on the compile folders in TORCHINDUCTOR_CACHE_DIR / TRITON_CACHE_DIR
  bash benchmarks/gpu_session.sh launch fast_1gpu > "$OUT/launch_$1.txt" 2>&1; mv "$OUT/launch.txt.xz" "/tmp/launch_$1_log.txt.xz"
  echo "$1: $(grep 'launch to first' "$OUT/launch_$1.txt") at $(( $(date +%s) - T0 ))s"
}
use main; launch main_fresh; launch main_warm
use aot; mkdir -p /tmp/ind_a /tmp/tri_a
(export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_a TRITON_CACHE_DIR=/tmp/tri_a; launch aot_fresh; launch aot_warm)
for b in relu2 main aot; do
  use $b; python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
    --json $OUT/step_$b.json > /tmp/step_$b.txt 2>&1; echo "$b step rc $? at $(( $(date +%s) - T0 ))s"
done
use relu2; python3 benchmarks/relu2_fp8.py --configs 64x128x8 > $OUT/relu2_bench.txt 2>&1; tail -6 $OUT/relu2_bench.txt
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls launch_*_log.txt.xz step_*.txt 2>/dev/null)
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {n: {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
        for n in ("main", "aot", "relu2") if (out / f"step_{n}.json").exists()}
for n, by in rows.items():
    for at, r in sorted(by.items()):
        ratio = r["median_ms"] / rows["main"][at]["median_ms"] if "main" in rows else float("nan")
        print(f"| {n} | {at} | {r['median_ms']:.2f} ms | {ratio:.3f}x | {r['peak_alloc_gib']:.2f} GiB |")
PY
