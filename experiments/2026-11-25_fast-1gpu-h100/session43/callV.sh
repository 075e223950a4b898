#!/usr/bin/env bash
# Part 43, call V (for the next lent machine; written when this session's device was withdrawn): checks branch
# `candidates-s43` (every attention layer attends through a window object; the KV cache in model/decoding.py) before
# it merges. On this CPU, TorchDynamo's graphs of GPT.features are node for node the same as main's for both back-ends
# (flex and dense), so the step should be the same; this call checks that on the GPU.
# Before the call, with the branch checked out: git archive -o .data/cand/main.tgz main   (carry [".data/cand"])
# 1. `gpu_session.sh launch` on the branch: fast_1gpu's launch on the machine's empty compile folders (goal 3).
# 2. `gpu_session.sh suite` on the branch: `tests/gpu` in two parallel halves, compile folders of their own.
# 3. `step_time.py` at schedule steps 900 and 999 (synthetic data): main, branch, main, in one call.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh launch > $OUT/launch_summary.txt 2>&1; echo "launch rc $? at $(( $(date +%s) - T0 ))s"
head -n 2 $OUT/launch_summary.txt | cut -c1-160; grep -E "^warm-up|launch to first" $OUT/launch_summary.txt | cut -c1-220
bash benchmarks/gpu_session.sh suite 2>&1 | tail -n 2; echo "suite done at $(( $(date +%s) - T0 ))s"
[ -f .data/cand/main.tgz ] || { echo "no .data/cand/main.tgz: step comparison skipped"; exit 0; }
mkdir -p /tmp/main && tar xzf .data/cand/main.tgz -C /tmp/main
step() {  # step NAME TREE
  (cd $2 && PYTHONPATH=$2 timeout 150 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 \
    --at-step 900 --at-step 999 > $OUT/step_$1.txt 2>&1)  # no --json: the device returns 8 files at most
  echo "$1 rc $? at $(( $(date +%s) - T0 ))s"; tail -n 3 $OUT/step_$1.txt | cut -c1-110
}
step main1 /tmp/main; step branch $(pwd); step main2 /tmp/main
