#!/usr/bin/env bash
# Part 34, call E: a fresh machine (not call B's), main b7953e5 (the sort-free block lists), carry [".data/park"].
# 1. Goal 3: fast_1gpu's launch, first on the machine (empty compile folders). 2. The same launch again on the now
# warm compile folders (what a second run on a machine sees). 3. Unpack the park shards for call F (goal 1).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_fresh.txt 2>&1; cut -c1-220 $OUT/launch_fresh.txt | sed -n 1,16p
mv $OUT/launch.txt.xz $OUT/launch_fresh_log.txt.xz; echo "fresh launch done at $(( $(date +%s) - T0 ))s"
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_warm.txt 2>&1; cut -c1-220 $OUT/launch_warm.txt | sed -n 4,8p
mv $OUT/launch.txt.xz $OUT/launch_warm_log.txt.xz; echo "warm launch done at $(( $(date +%s) - T0 ))s"
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-200
