#!/usr/bin/env bash
# Prepared in part 13 for the next session, call B (carry [".fa4/b"]), right after callA.sh on the same machine: unpack
# the bundle into /tmp/fa4site (it stays there for call C), check attention_kernel = fa4 against its dense twin
# (GPU tests), time one layer (attention.py) and the step of fast_1gpu at both kernels and of record21_1gpu, then the
# whole GPU suite with the time left (record21_1gpu's step was timed in part 13: 94.86 ms; dropped to leave the suite room).
T0=$(date +%s); export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
python3 -c "from speedrun.model.fa4 import fa4_available as f; print('fa4 available:', f())" 2>&1 | tail -2
timeout 200 python3 -m pytest -q tests/gpu/test_gpu.py -k fa4 -p no:cacheprovider -s > $OUT/fa4_tests.txt 2>&1
grep -E "FA4|compiled FA4|passed|failed|Error" $OUT/fa4_tests.txt | tail -8 | cut -c1-300
echo "fa4 tests done at $(( $(date +%s) - T0 ))s"
for v in fast_1gpu:fa4 fast_1gpu:triton; do
  r=${v%%:*}; k=${v##*:}; left=$(( 400 - ($(date +%s) - T0) )); [ $left -lt 60 ] && break
  timeout $left python3 benchmarks/step_time.py --recipe $r --set attention_kernel=$k --steps 30 --profile \
    --json $OUT/st_${r}_$k.json > $OUT/st_${r}_$k.txt 2>&1; echo "step_time $r $k rc $?"; tail -3 $OUT/st_${r}_$k.txt | cut -c1-200
done
left=$(( 590 - ($(date +%s) - T0) ))
[ $left -gt 60 ] && timeout $left python3 -m pytest -q tests/gpu -p no:cacheprovider -k "not fa4" > $OUT/gpu_tests.txt 2>&1
tail -2 $OUT/gpu_tests.txt
