#!/usr/bin/env bash
# Part 43, call L (after calls E, C and S; a new machine): goal 3's launch, then the GPU suite on main's final code
# (88e3c9c: `sample`/`eval` with no checkpoint mean latest, `resolve` says when `latest`'s folder is missing).
# 1. `gpu_session.sh launch`: fast_1gpu, 30 steps on random tokens, the machine's first compile (empty default folders),
#    the launch to the first timed step and TorchDynamo's compile-time table (its printout: $OUT/launch.txt.xz).
# 2. `gpu_session.sh suite`: `tests/gpu` in two parallel halves, compile folders of their own. No carry: both make
#    their own data. (Refused at its start in part 43; kept for the next lent machine.)
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch > $OUT/launch_summary.txt 2>&1; echo "launch rc $? at $(( $(date +%s) - T0 ))s"
head -n 2 $OUT/launch_summary.txt | cut -c1-160; grep -E "inductor cache|^warm-up|launch to first|peak memory" $OUT/launch_summary.txt | cut -c1-220
bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 2; echo "suite done at $(( $(date +%s) - T0 ))s"
