#!/usr/bin/env bash
# Part 29 call D (carry [".data/cand"]; the same machine, shards in /tmp/corpus): the sampled
# softmax's step time. benchmarks/step_time.py on the track's shards, `fast_1gpu` (tied), without and with
# sampled_head_rows=12288, each at schedule step 1000 (sampled: 1000 < 93% of 1100) and 1100 (the full softmax for
# both: the same work, a check), 40 timed steps each, the two builds one after the other in one call.
# Part of the sampled-softmax rule in callC.sh: its step at step 1000 must be 0.95x of the tied step's or less.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
# The candidates' code is branch candidates-s28 (ef0d0ac); it travels as .data/cand/cand_s28.tgz (carry [".data/cand"],
# `git archive candidates-s28 speedrun tests benchmarks/step_time.py`) and is unpacked over main's tree here.
tar xzf .data/cand/cand_s28.tgz || { echo 'NO CANDIDATES: the archive did not unpack'; exit 3; }
for v in tie samp; do
  extra=(); [ $v = samp ] && extra=(--set sampled_head_rows=12288)
  python3 benchmarks/step_time.py --recipe fast_1gpu "${extra[@]}" --steps 40 \
    --shards "/tmp/corpus/corpus_train_00000[0-4].bin" --at-step 1000 --at-step 1100 --json $OUT/step_$v.json \
    > $OUT/step_$v.txt 2>&1
  echo "$v rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/step_$v.txt | cut -c1-200
done
python3 - <<'PY'
import json, os
rows = {v: {r["at_step"]: r["median_ms"] for r in json.load(open(f"{os.environ['OUT']}/step_{v}.json"))["rows"]}
        for v in ("tie", "samp")}
for s in (1000, 1100):
    print(f"step {s}: tied {rows['tie'][s]:.2f} ms, sampled {rows['samp'][s]:.2f} ms, {rows['samp'][s] / rows['tie'][s]:.3f}x")
PY
