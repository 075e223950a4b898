#!/usr/bin/env bash
# Part 20, call C (no carry): goal 2, `benchmarks/step_time.py` for `fast_1gpu` (profiled) and `record21_1gpu`, each
# alone, at the first and the final attention windows; then the GPU tests on this commit.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
for r in fast_1gpu record21_1gpu; do
  extra=; [ $r = fast_1gpu ] && extra=--profile
  timeout 200 python3 benchmarks/step_time.py --recipe $r --steps 30 $extra --json $OUT/st_$r.json > $OUT/st_$r.txt 2>&1
  echo "step_time $r rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/st_$r.txt | cut -c1-200
done
grep -A10 "kernel family" $OUT/st_fast_1gpu.txt
left=$(( 590 - ($(date +%s) - T0) ))
timeout $left python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1; echo "tests rc $? at $(( $(date +%s) - T0 ))s"
tail -2 $OUT/gpu_tests.txt
