#!/usr/bin/env bash
# Part 27, call C: a fresh machine (calls A and B's was released), carry [".data/corpus"]: unpack shards 0-3 + val;
# call D, right after, brings shard 4 and trains.
export PYTHONUNBUFFERED=1
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
