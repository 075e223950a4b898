#!/usr/bin/env bash
# Part 20, call D (no carry): goal 2, `benchmarks/step_time.py` for `fast_1gpu` (profiled) and `record21_1gpu`, each
# alone, at the first and the final attention windows. (Call C meant to run these first, but its machine was a fresh
# one where `pip install -e .` needed --no-build-isolation, so only its GPU tests ran.)
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
for r in fast_1gpu record21_1gpu; do
  extra=; [ $r = fast_1gpu ] && extra=--profile
  timeout 260 python3 benchmarks/step_time.py --recipe $r --steps 30 $extra --json $OUT/st_$r.json > $OUT/st_$r.txt 2>&1
  echo "step_time $r rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/st_$r.txt | cut -c1-200
done
grep -A10 "kernel family" $OUT/st_fast_1gpu.txt
