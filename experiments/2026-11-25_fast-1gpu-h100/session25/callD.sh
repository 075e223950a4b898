#!/usr/bin/env bash
# Part 25, call D (carry [".data/park"]: train shard 4 + val; call C unpacked shards 0-3 on this machine): the GPU
# tests on the final commit beside three 1100-step runs of the final `fast_1gpu` (Adam betas of their own) at once
# (losses only: they share the GPU), at seeds 12 / 13 / 14, where part 24 ran `fast_1gpu` without them:
# 3.3901 / 3.3870 / 3.3931 (mean 3.3901). Call B's seed-7 pair: 3.3883 against 3.3915.
# The rule, fixed before the runs: the betas stay if the three runs' mean is under 3.3901 and the four pairs' mean
# difference is -0.001 or less; else they go (recipe and code).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1 &
tests=$!
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" = 5 ]; then
  # expandable segments: three runs and the tests share 140 GiB; call B lost a run to a final val's 24.6 GiB request
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LIMIT=540 bash benchmarks/gpu_session.sh ttt d --target 3.41 \
    --parallel 3 s12:fast_1gpu,seed=12 s13:fast_1gpu,seed=13 s14:fast_1gpu,seed=14 > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed since call C)"
fi
wait $tests; echo "tests rc $? at $(( $(date +%s) - T0 ))s"; tail -2 $OUT/gpu_tests.txt
python3 - <<'PY'
import os, re
base = {12: 3.3901, 13: 3.3870, 14: 3.3931}
try:
    text = open(os.environ["OUT"] + "/ttt.txt").read()
    got = {int(s): float(v) for s, v in re.findall(r"\| s(\d+) \| fast_1gpu seed=\d+ \| 1100 \| (3\.\d+) \|", text)}
except Exception as e:
    got = {}; print("no results:", e)
if len(got) == 3:
    mean = sum(got.values()) / 3
    diffs = [got[s] - base[s] for s in base] + [3.3883 - 3.3915]
    keep = mean < 3.3901 and sum(diffs) / 4 <= -0.001
    print(f"betas: {' '.join(f'{got[s]:.4f}' for s in base)} mean {mean:.4f} (base 3.3901); pairs {' '.join(f'{d:+.4f}' for d in diffs)}"
          f" mean {sum(diffs) / 4:+.4f} -> {'keep' if keep else 'remove'}")
else:
    print("betas: not all three runs ended:", got)
PY
