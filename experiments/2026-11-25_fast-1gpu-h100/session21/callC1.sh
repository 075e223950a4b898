#!/usr/bin/env bash
# Part 21, call C1 (carry [".data/corpus"]): install and unpack train shards 0-3 + val for call C2 on the same machine.
bash benchmarks/gpu_session.sh setup 2>&1 | tail -3 | cut -c1-300
