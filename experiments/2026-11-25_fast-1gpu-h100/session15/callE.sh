#!/usr/bin/env bash
# Part 15, call E (no carry; FlashAttention-4 in /tmp/fa4site): the whole GPU suite on the commit under test.
export PYTHONUNBUFFERED=1
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh >/dev/null
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
timeout 570 python3 -m pytest -q tests/gpu -p no:cacheprovider -s > $OUT/gpu_tests.txt 2>&1
grep -E "FA4|passed|failed|Error" $OUT/gpu_tests.txt | tail -6 | cut -c1-300
