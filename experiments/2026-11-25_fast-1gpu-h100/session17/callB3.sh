#!/usr/bin/env bash
# Part 17, call B3 (no carry): B1's delayed build failed to compile (Inductor's _scaled_mm lowering asserts both scales
# have one rank: (1,) against 0-d); fixed. The new GPU tests, then dynamic against delayed step time, each alone.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
timeout 40 python3 -m pytest -q tests/gpu/test_gpu.py -s -p no:cacheprovider -k "relu2 or (delayed_fp8_mlp_matches and False)" > $OUT/gpu_tests_new.txt 2>&1
echo "new GPU tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "passed|failed|error|relative|values equal" $OUT/gpu_tests_new.txt | tail -8 | cut -c1-250
for v in delayed dynamic; do
  left=$(( 215 - ($(date +%s) - T0) )); [ $left -lt 45 ] && break
  prof=
  timeout $left python3 benchmarks/step_time.py --recipe fast_1gpu --set fp8_mlp_scaling=$v --steps 20 $prof \
    --json $OUT/st_$v.json > $OUT/st_$v.txt 2>&1
  echo "$v rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/st_$v.txt | cut -c1-220
done
