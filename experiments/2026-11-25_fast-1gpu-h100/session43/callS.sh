#!/usr/bin/env bash
# Part 43, call S (run inline in the device call; kept here as it ran): goal 2's step times, `fast_1gpu` at schedule
# steps 900 (sampled softmax, window 1664) and 999 (full softmax, final window 1792), then `record21_1gpu` at its last
# step (1769, window 1792), on the machine that had just run calls E and C (their compile folders warm).
export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-deps -e . >/dev/null 2>&1; T0=$(date +%s)
python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --at-step 900 --at-step 999 --json $OUT/fast.json > $OUT/fast.txt 2>&1
echo "fast rc $? at $(( $(date +%s) - T0 ))s"
python3 benchmarks/step_time.py --recipe record21_1gpu --steps 30 --at-step 1769 --json $OUT/r21.json > $OUT/r21.txt 2>&1
echo "r21 rc $? at $(( $(date +%s) - T0 ))s"
tail -n 6 $OUT/fast.txt | cut -c1-200; tail -n 4 $OUT/r21.txt | cut -c1-200
