#!/usr/bin/env bash
# Part 17, call B1 (carry [".data/park"]: train shard 4 + val), a fresh machine: unpack them, then the step of
# `fast_1gpu` with the MLP's dynamic FP8 scales against `fp8_mlp_scaling=delayed` (benchmarks/step_time.py, synthetic
# tokens, each alone), alternating: dynamic, delayed, dynamic again if the time allows (its compile is cached).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-200
for v in dynamic delayed dynamic2; do
  left=$(( 330 - ($(date +%s) - T0) )); [ $left -lt 45 ] && break
  prof=; [ $v = delayed ] && prof=--profile  # its kernels, against call A's profile of the dynamic build
  timeout $left python3 benchmarks/step_time.py --recipe fast_1gpu --set fp8_mlp_scaling=${v%2} --steps 20 $prof \
    --json $OUT/st_$v.json > $OUT/st_$v.txt 2>&1
  echo "$v rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/st_$v.txt | cut -c1-220
done
