#!/usr/bin/env bash
# Part 14's plan, call B (carry [".fa4/b", ".data/park"]; .data/park holds corpus_train_000004.bin.xz and
# corpus_val_000000.bin.xz, shards 0-3 come in call C): unpack FlashAttention-4 and the parked shards. Nothing
# compiles here, so call C's first run still launches as on a fresh machine.
source experiments/2026-11-25_fast-1gpu-h100/session13/fa4_env.sh
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt
python3 -c "from speedrun.model.fa4 import fa4_available as f; print('fa4 available:', f())" 2>&1 | tail -1
