#!/usr/bin/env bash
# Part 37, call B: fresh launches of fast_1gpu, main (`base`, 5b07eac) against Muon's graphs compiled in a side process
# (`side`, candidates-s37), in the order base, side, side, base, each on empty compile folders of its own; then the
# side process's GPU test. Carry [".data/cand"].
# The rule, fixed before the call: `side` is kept if its two launches average at least 4 s under base's two, and its
# first step's optimiser phase is at least 5 s shorter than base's in both of its launches.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
use() { rm -rf speedrun tests benchmarks && tar xzf ".data/cand/$1.tgz" && python3 -m pip install -q --no-deps -e . >/dev/null 2>&1; }
launch() {  # launch BUILD N
  use $1; export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$2 TRITON_CACHE_DIR=/tmp/tri_$2
  bash benchmarks/gpu_session.sh launch fast_1gpu > /tmp/launch_$2_$1.txt 2>&1; mv $OUT/launch.txt.xz /tmp/launch_$2_$1_log.txt.xz
  echo "$2 $1: $(grep 'launch to first' /tmp/launch_$2_$1.txt | cut -c1-60) | $(grep 'warm-up step 1/' /tmp/launch_$2_$1.txt)" \
    "| $(xz -dc /tmp/launch_$2_$1_log.txt.xz | grep -o "Muon's graphs.*" | cut -c1-110) | at $(( $(date +%s) - T0 ))s" | tee -a $OUT/launches.txt
}
launch base 1; launch side 2; launch side 3; launch base 4
use side; export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_t TRITON_CACHE_DIR=/tmp/tri_t
timeout 120 python3 -m pytest -q -s tests/gpu/test_side_compile_gpu.py > $OUT/gpu_side.txt 2>&1; tail -n 3 $OUT/gpu_side.txt
echo "done at $(( $(date +%s) - T0 ))s"
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls launch_*)
