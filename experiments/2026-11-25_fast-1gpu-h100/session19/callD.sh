#!/usr/bin/env bash
# Part 19, call D (no carry): goal 2, `benchmarks/step_time.py` for `fast_1gpu` and `record21_1gpu` in one call, each
# alone, at the first and the final attention windows (compile caches warm from calls A-C), `fast_1gpu` profiled.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
for r in fast_1gpu record21_1gpu; do
  extra=; [ $r = fast_1gpu ] && extra=--profile
  left=$(( 580 - ($(date +%s) - T0) )); [ $left -lt 60 ] && break
  timeout $left python3 benchmarks/step_time.py --recipe $r --steps 30 $extra --json $OUT/st_$r.json > $OUT/st_$r.txt 2>&1
  echo "step_time $r rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^\s*(window|[0-9])|median|final|first" $OUT/st_$r.txt | tail -4 | cut -c1-200
done
