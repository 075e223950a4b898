#!/usr/bin/env bash
# For the session that brings the delayed FP8 MLP back (`git revert dc6482d`, the commit that took it off main; see
# experiments part 17), on a machine that already unpacked the track (carry .data/park, then .data/corpus, setup):
# the new kernels' GPU tests first (stop if red), then the step against the dynamic build, each alone, alternating;
# then the GPU suite beside one 1200-step run at seed 7 (part 16's dynamic run there: 3.3806).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
timeout 150 python3 -m pytest -q tests/gpu/test_gpu.py -s -p no:cacheprovider -k "relu2 or delayed" > $OUT/gpu_tests_new.txt 2>&1
rc=$?; echo "new GPU tests rc $rc at $(( $(date +%s) - T0 ))s"; grep -E "passed|failed|relative|values equal" $OUT/gpu_tests_new.txt | tail -9 | cut -c1-250
[ $rc -ne 0 ] && exit 1
for v in delayed dynamic delayed2 dynamic2; do
  left=$(( 560 - ($(date +%s) - T0) )); [ $left -lt 60 ] && break
  timeout $left python3 benchmarks/step_time.py --recipe fast_1gpu --set fp8_mlp_scaling=${v%2} --steps 20 \
    --json $OUT/st_$v.json > $OUT/st_$v.txt 2>&1
  echo "$v rc $? at $(( $(date +%s) - T0 ))s"; tail -2 $OUT/st_$v.txt | cut -c1-220
done
# next call (about 330 s): the suite and the loss
# (timeout 330 python3 -m pytest -q tests/gpu -p no:cacheprovider > $OUT/gpu_tests.txt 2>&1 &)
# LIMIT=330 bash benchmarks/gpu_session.sh ttt d --target 3.41 delayed:fast_1gpu,seed=7,fp8_mlp_scaling=delayed
