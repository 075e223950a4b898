#!/usr/bin/env bash
# Part 13 (prepared in part 12, not yet run), call 1 (carry [".fa4/a"]): park the first half of the FlashAttention-4 bundle, then the GPU tests.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p .fa4store && cp .fa4/a/part.00 .fa4store/ && ls -la .fa4store
nvidia-smi --query-gpu=name,memory.total,driver_version,uuid --format=csv,noheader
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
# TESTS=0 (after call0.sh, which ran them): park the half only
[ "${TESTS:-1}" = 0 ] || timeout 560 python3 -m pytest -q tests/gpu -p no:cacheprovider -rf 2>&1 | tee $OUT/gpu_tests.txt | tail -6
