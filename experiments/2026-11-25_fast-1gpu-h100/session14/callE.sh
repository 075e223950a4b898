#!/usr/bin/env bash
# Part 14's plan, call E (no carry; FlashAttention-4 in /tmp/fa4site from call B): the whole GPU suite on the commit
# under test, the fa4 tests included.
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
timeout 560 python3 -m pytest -q tests/gpu -p no:cacheprovider -s > $OUT/gpu_tests.txt 2>&1
grep -E "FA4|passed|failed|Error" $OUT/gpu_tests.txt | tail -6 | cut -c1-300
