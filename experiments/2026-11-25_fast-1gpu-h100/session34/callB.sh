#!/usr/bin/env bash
# Part 34, call B: a fresh machine, the working tree with the sort-free block lists (`new`), carry [".data/park",
# ".data/cand"] (.data/cand/main.tgz = `git archive 6266fa4 speedrun tests benchmarks`, main before the change).
# 1. Goal 3: new's fast_1gpu launch, first on the machine (its default, empty compile folders).
# 2. Step time at schedule steps 900 and 999 (train shards 3-4), new, then main.
# 3. Main's launch on a second pair of empty compile folders (run second on the machine: the cold start favours it).
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-200
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_new.txt 2>&1; cut -c1-220 $OUT/launch_new.txt | sed -n 4,16p
mv $OUT/launch.txt.xz /tmp/launch_new_log.txt.xz; echo "new launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_new.json > /tmp/step_new.txt 2>&1; echo "new step rc $? at $(( $(date +%s) - T0 ))s"
rm -rf /tmp/new_copy && mkdir /tmp/new_copy && cp -r speedrun tests benchmarks /tmp/new_copy/
rm -rf speedrun tests benchmarks && tar xzf .data/cand/main.tgz || { echo "NO ARCHIVE"; exit 3; }
grep -c "argsort" speedrun/model/attention.py
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json $OUT/step_main.json > /tmp/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
mkdir -p /tmp/ind_m /tmp/tri_m
TORCHINDUCTOR_CACHE_DIR=/tmp/ind_m TRITON_CACHE_DIR=/tmp/tri_m bash benchmarks/gpu_session.sh launch fast_1gpu \
  > $OUT/launch_main.txt 2>&1; cut -c1-220 $OUT/launch_main.txt | sed -n 4,16p
mv $OUT/launch.txt.xz /tmp/launch_main_log.txt.xz; echo "main launch done at $(( $(date +%s) - T0 ))s"
rm -rf speedrun tests benchmarks && cp -r /tmp/new_copy/* . && grep -c "argsort" speedrun/model/attention.py
tar czf $OUT/logs.tgz -C /tmp step_new.txt step_main.txt launch_new_log.txt.xz launch_main_log.txt.xz
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
for n in ("main", "new"):
    try:
        rows[n] = {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
    except Exception as e:  # noqa: BLE001
        print(f"{n}: no result ({e})")
print("| build | step | median ms | peak alloc GiB |\n|---|---:|---:|---:|")
for n, by in rows.items():
    for at, r in sorted(by.items()):
        print(f"| {n} | {at} | {r['median_ms']:.2f} | {r['peak_alloc_gib']:.2f} |")
if len(rows) == 2:
    for at in (900, 999):
        print(f"new / main at step {at}: {rows['new'][at]['median_ms'] / rows['main'][at]['median_ms']:.3f}")
PY
for f in launch_new launch_main; do echo "$f: $(grep 'launch to first' $OUT/$f.txt)"; done
