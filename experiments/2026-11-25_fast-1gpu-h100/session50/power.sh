#!/usr/bin/env bash
# Part 50, call D: step_time.py --power (new) on main's code: fast_1gpu at steps 900 and 999 with the profile by kernel
# family at 999 (H100), then record21_1gpu at steps 0 and 1769, both with the GPU's power and clock read during each
# timed window.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid,power.limit --format=csv,noheader
timeout 260 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --at-step 900 --at-step 999 --power --profile \
  --json $OUT/fast_power.json > $OUT/fast_power.txt 2>&1
echo "fast rc $? at $(( $(date +%s) - T0 ))s"
grep -A40 "^kernel family" $OUT/fast_power.txt | head -14; tail -n 7 $OUT/fast_power.txt | cut -c1-140
timeout 200 python3 benchmarks/step_time.py --recipe record21_1gpu --steps 20 --at-step 0 --at-step 1769 --power \
  --json $OUT/r21_power.json > $OUT/r21_power.txt 2>&1
echo "record21 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 7 $OUT/r21_power.txt | cut -c1-140
xz -9 $OUT/fast_power.txt
