#!/usr/bin/env bash
# Part 34, call A: a fresh machine (the session's first call), main's tree, no carry.
# 1. Goal 3: main's fast_1gpu launch on the machine's empty compile folders (untraced).
# 2. The same launch again with torch's structured trace (TRACE=1) on a second pair of empty compile folders
#    (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR), so that benchmarks/compile_times.py can say which compiled graphs
#    and which Triton kernels the compile waits for.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch fast_1gpu > $OUT/launch_main.txt 2>&1; cut -c1-220 $OUT/launch_main.txt | sed -n 1,20p
mv $OUT/launch.txt.xz $OUT/launch_main_log.txt.xz; echo "launch 1 done at $(( $(date +%s) - T0 ))s"
mkdir -p /tmp/ind_b /tmp/tri_b
TORCHINDUCTOR_CACHE_DIR=/tmp/ind_b TRITON_CACHE_DIR=/tmp/tri_b TRACE=1 bash benchmarks/gpu_session.sh launch fast_1gpu \
  > $OUT/launch_trace.txt 2>&1; echo "launch 2 rc $? done at $(( $(date +%s) - T0 ))s"
mv $OUT/launch.txt.xz $OUT/launch_trace_log.txt.xz
cut -c1-220 $OUT/launch_trace.txt | sed -n 1,16p
du -sh /tmp/launch/trace; tar cJf $OUT/trace.tar.xz -C /tmp/launch trace 2>/dev/null
[ $(stat -c %s $OUT/trace.tar.xz) -gt 15000000 ] && rm $OUT/trace.tar.xz; ls -la $OUT
cat $OUT/compile_times.txt | cut -c1-220
