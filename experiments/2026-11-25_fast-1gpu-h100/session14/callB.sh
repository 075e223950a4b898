#!/usr/bin/env bash
# Part 14's plan, call B (carry [".fa4/b", ".data/park"]; .data/park holds corpus_train_000004.bin.xz and
# corpus_val_000000.bin.xz, the rest of the corpus comes in call C): unpack FlashAttention-4 and the parked shards,
# then the whole GPU suite on the commit under test (fa4 tests included).
T0=$(date +%s); export PYTHONUNBUFFERED=1
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt
python3 -c "from speedrun.model.fa4 import fa4_available as f; print('fa4 available:', f())" 2>&1 | tail -1
timeout 540 python3 -m pytest -q tests/gpu -p no:cacheprovider -s > $OUT/gpu_tests.txt 2>&1
grep -E "FA4|passed|failed|Error" $OUT/gpu_tests.txt | tail -6 | cut -c1-300
echo "call B done at $(( $(date +%s) - T0 ))s"
