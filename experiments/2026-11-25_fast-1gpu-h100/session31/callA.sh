#!/usr/bin/env bash
# Part 31 (planned), call A: a fresh machine (the session's first call), main's tree, carry [".data/corpus"].
# Goal 3: the launch of `fast_1gpu` as main has it since part 30 (the graph break after the trunk: the trunk compiles
# once, the head twice) on the machine's empty compile folders. Part 30 measured 108.9 s for this build, but as a
# second launch on its machine (Python's files in the page cache); main before the break took 177.6 s fresh.
# Then the step with the head sampled to the end at the final window again (part 30: 68.99 ms), so that goal 2's
# figure comes from the tree that trains it, and main's at step 1099 (the full softmax) beside it.
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[0-2].bin"
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_summary.txt 2>&1; cut -c1-200 $OUT/launch_summary.txt | head -8
echo "launch done at $(( $(date +%s) - T0 ))s"
for v in full end1; do
  set_end=(); [ $v = end1 ] && set_end=(--set sampled_head_end_frac=1.0)
  python3 benchmarks/step_time.py --recipe fast_1gpu "${set_end[@]}" --steps 30 --shards "$S" --at-step 1099 \
    --json $OUT/step_$v.json > $OUT/step_$v.txt 2>&1; echo "$v step rc $? at $(( $(date +%s) - T0 ))s"
  xz -9f $OUT/step_$v.txt
done
python3 -c "
import json
for v in ('full', 'end1'):
    r = json.load(open('$OUT/step_' + v + '.json'))['rows'][0]
    print(v, 'at step', r['at_step'], 'window', r['window_tokens'], 'median ms', round(r['median_ms'], 2))"
