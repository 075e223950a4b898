#!/usr/bin/env bash
# Part 33, call A: a fresh machine (the session's first call), main's tree, carry [".data/park", ".data/cand"]
# (.data/cand/cand.tgz = `git archive candidates-s33 speedrun tests benchmarks`, branch commit 0a8501e).
# The candidate `part`: after the sampled 93% of the steps, the full softmax over the first 2,048 tokens of each row
# only (`sampled_head_full_tokens = 2048`, on in the branch's `fast`), the other 47,104 still over the 12,288 sampled rows.
# Rule, fixed before calls A and B: `part` goes into `fast` if (1) its step at schedule step 999 is at most 0.95x main's
# here, (2) at seed 8 it ends at most 0.003 over main's seed 8 in call B, (3) its seeds 8, 7, 13 all end at or under
# 3.41 with `speedrun stats --target 3.41` p < 0.01, and (4) its peak memory is no higher than main's. Else removed.
# 1. Goal 3 on the branch's `fast_1gpu` (the code that would land): launch on the machine's empty compile folders.
# 2. Step time at schedule steps 900 (sampled) and 999 (final window): part, part with 1,024 tokens (999 only), main.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-200
rm -rf /tmp/main_copy && mkdir /tmp/main_copy && cp -r speedrun tests benchmarks /tmp/main_copy/
rm -rf speedrun tests benchmarks && tar xzf .data/cand/cand.tgz || { echo "NO ARCHIVE"; exit 3; }
grep -n "^sampled_head" speedrun/recipes/fast.toml
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_part.txt 2>&1; cut -c1-200 $OUT/launch_part.txt | sed -n 4,16p
mv $OUT/launch.txt.xz /tmp/launch_part_log.txt.xz; echo "part launch done at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 --profile \
  --json /tmp/step_part.json > /tmp/step_part.txt 2>&1; echo "part step rc $? at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe fast_1gpu --set sampled_head_full_tokens=1024 --steps 30 --shards "$S" \
  --at-step 999 --json /tmp/step_part1024.json > /tmp/step_part1024.txt 2>&1; echo "part1024 step rc $? at $(( $(date +%s) - T0 ))s"
rm -rf speedrun tests benchmarks && cp -r /tmp/main_copy/* . && grep -c "^sampled_head_full" speedrun/recipes/fast.toml
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
  --json /tmp/step_main.json > /tmp/step_main.txt 2>&1; echo "main step rc $? at $(( $(date +%s) - T0 ))s"
cp /tmp/step_part.json /tmp/step_part1024.json /tmp/step_main.json $OUT/ 2>/dev/null
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls step_main.txt step_part.txt step_part1024.txt launch_part_log.txt.xz 2>/dev/null)
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
for n in ("main", "part", "part1024"):
    try:
        rows[n] = {r["at_step"]: r for r in json.loads((out / f"step_{n}.json").read_text())["rows"]}
    except Exception as e:  # noqa: BLE001
        print(f"{n}: no result ({e})")
print("| build | step | median ms | peak alloc GiB |\n|---|---:|---:|---:|")
for n, by in rows.items():
    for at, r in sorted(by.items()):
        print(f"| {n} | {at} | {r['median_ms']:.2f} | {r['peak_alloc_gib']:.2f} |")
if "main" in rows and "part" in rows:
    m, p = rows["main"][999]["median_ms"], rows["part"][999]["median_ms"]
    print(f"part / main at step 999: {p / m:.3f} (rule 1: <= 0.95): {'pass' if p <= 0.95 * m else 'FAIL'}; "
          f"goal 2 (<= 70 ms): {'met' if p <= 70 else 'not met'} ({p:.2f} ms)")
    pathlib.Path("/tmp/s33_rule1").write_text("pass" if p <= 0.95 * m else "fail")
PY
