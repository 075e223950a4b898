#!/usr/bin/env bash
# Part 21, call A (carry [".data/corpus"]: train shards 0-3 + val, unpacked for call B): the step time of `fast_1gpu`
# with and without exclusive self-attention (`xsa=true`), `benchmarks/step_time.py --steps 30`, synthetic tokens, each
# build alone, alternating base / xsa / base / xsa (the first base compiles on a fresh machine).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
run() {  # label, extra step_time args
  timeout 200 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 "${@:2}" --json $OUT/st_$1.json > $OUT/st_$1.txt 2>&1
  echo "step_time $1 rc $? at $(( $(date +%s) - T0 ))s"; tail -3 $OUT/st_$1.txt | cut -c1-200
}
run base1
run xsa1 --set xsa=true
run base2
run xsa2 --set xsa=true --profile
grep -A10 "kernel family" $OUT/st_xsa2.txt
