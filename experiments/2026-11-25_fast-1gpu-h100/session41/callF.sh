#!/usr/bin/env bash
# Part 41, call F (written after calls C and E, with the ~450 s of device time left): the step of main with the split
# compile against the one-frame build it replaced (.data/cand/main.tgz = `git archive 50556ef`), at schedule steps 900
# and 999, in one call. A check, not a decision: part 37's CPU probe found the same graphs, part 31 measured the split
# at 0.995x / 0.990x. Carry [".data/park", ".data/cand"].
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -n 1 $OUT/setup.txt | cut -c1-120
mkdir -p /tmp/one && tar xzf .data/cand/main.tgz -C /tmp/one
step() {  # step NAME TREE
  (cd $2 && PYTHONPATH=$2 timeout 170 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" \
    --at-step 900 --at-step 999 --json $OUT/step_$1.json > $OUT/step_$1.txt 2>&1)
  echo "$1 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 4 $OUT/step_$1.txt | cut -c1-160
}
step split $(pwd); step one_frame /tmp/one
