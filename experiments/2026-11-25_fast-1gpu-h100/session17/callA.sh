#!/usr/bin/env bash
# Part 17, call A (no carry; synthetic tokens): where the step goes, by whole kernel name. `step_time.py --profile
# --json` for `fast_1gpu` on a fresh machine; the FlexAttention kernel options `attention.py` could not run in part 8;
# then, with the time left, the step under Inductor's coordinate-descent tuning (and what it costs to compile).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader
timeout 300 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --profile --json $OUT/st_fast.json > $OUT/st_fast.txt 2>&1
echo "step_time fast rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/st_fast.txt | cut -c1-200
left=$(( 560 - ($(date +%s) - T0) ))
timeout $(( left < 200 ? left : 200 )) python3 benchmarks/attention.py --budget 150 --json $OUT/attn.json > $OUT/attn.txt 2>&1
echo "attention rc $? at $(( $(date +%s) - T0 ))s"; tail -14 $OUT/attn.txt | cut -c1-160
left=$(( 580 - ($(date +%s) - T0) ))
if [ $left -gt 150 ]; then
  TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind_cd timeout $left python3 benchmarks/step_time.py \
    --recipe fast_1gpu --steps 30 --json $OUT/st_fast_cd.json > $OUT/st_fast_cd.txt 2>&1
  echo "step_time fast coordinate-descent rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/st_fast_cd.txt | cut -c1-200
fi
