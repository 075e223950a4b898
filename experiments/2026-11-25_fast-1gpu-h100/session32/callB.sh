#!/usr/bin/env bash
# Part 32 (planned), call B (call A's machine; no carry): the two launches again, on new empty compile folders, in the
# reverse order (the candidate first, then main), so that neither build always has the warmer machine. This tree is
# main's: its speedrun/ is kept aside while the candidate's archive (carry ".data/cand") is unpacked over it.
# The rule (fixed in callA.sh): to main if the candidate's warm-up is at least 8 s shorter than main's in both calls
# and its step at 900 and 999 at most 1.005x main's (call A). The decision is left in /tmp/s32_decision for call C.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
[ -f /tmp/s32_A.json ] || { echo "NOT CALL A'S MACHINE: no /tmp/s32_A.json"; exit 3; }
rm -rf /tmp/main_speedrun && cp -r speedrun /tmp/main_speedrun
tar xzf .data/cand/cand_s31.tgz || { echo "NO ARCHIVE"; exit 3; }
grep -n "INDUCTOR_OPTIONS = " speedrun/build.py
TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_pw2 TRITON_CACHE_DIR=/tmp/triton_pw2 bash benchmarks/gpu_session.sh launch fast_1gpu \
  > $OUT/launch_pw2.txt 2>&1; cut -c1-200 $OUT/launch_pw2.txt | sed -n 4,8p
mv $OUT/launch.txt.xz $OUT/launch_pw2_log.txt.xz; echo "pw launch done at $(( $(date +%s) - T0 ))s"
rm -rf speedrun && cp -r /tmp/main_speedrun speedrun && ! grep -q "INDUCTOR_OPTIONS" speedrun/build.py && echo "main's tree back"
TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_main2 TRITON_CACHE_DIR=/tmp/triton_main2 bash benchmarks/gpu_session.sh launch fast_1gpu \
  > $OUT/launch_main2.txt 2>&1; cut -c1-200 $OUT/launch_main2.txt | sed -n 4,8p
mv $OUT/launch.txt.xz $OUT/launch_main2_log.txt.xz; echo "main launch done at $(( $(date +%s) - T0 ))s"
cp /tmp/s32_A.json $OUT/ 2>/dev/null
python3 experiments/2026-11-25_fast-1gpu-h100/session32/decide.py B "$OUT"
