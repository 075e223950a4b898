#!/usr/bin/env bash
# Part 37, call C (not run: no device was lent after call B; run it from a checkout of branch candidates-s37b, with
# .data/cand/main.tgz = `git archive main speedrun tests benchmarks | gzip`; since session 39 the branch holds main
# merged in, so its tree is what a merge would put on main). A fresh machine: the split compile (`split`, the branch's
# tree, carried as the working tree) against main (`main`, .data/cand/main.tgz): one fresh launch each (split first, in the machine's cold slot),
# each on empty compile folders of its own; then the GPU suite on split (two processes); then split's step at 900/999
# if time is left. Carry [".data/cand", ".data/park"].
# The rule, fixed before the call: the split goes to main if (1) the GPU suite passes on it, (2) its launch has no
# TorchDynamo restart and its bytecode_tracing is at least 3 s under main's, and (3) its first warm-up step's forward +
# backward is at most 5 s longer than main's (the graphs are the same: session37/cpu_split_probe.txt).
export PYTHONUNBUFFERED=1; T0=$(date +%s); S="/tmp/corpus/corpus_train_00000[34].bin"
mkdir -p /tmp/split && tar cf - speedrun tests benchmarks | tar xf - -C /tmp/split   # keep the candidate's tree
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
# Import probe (added in session 38, before any call; the rule below is unchanged): the launch's set-up spends 14.5 s
# importing (part 37: imports+plan 5.1, compiler import 6.1, optimisers 3.3, mostly torch._inductor's import) against
# about 4 s on a 2-core CPU machine. Are the compiler's .pyc files there, or compiled on a fresh machine's first import?
imp() { python3 -c 'import time, os; t = time.time(); import torch; a = time.time(); import torch._dynamo; b = time.time()
import torch._inductor.compile_fx; c = time.time(); d = os.path.dirname(torch.__file__)
pyc = os.path.isdir(os.path.join(d, "_dynamo", "__pycache__")) and any(f.startswith("symbolic_convert.") for f in os.listdir(os.path.join(d, "_dynamo", "__pycache__")))
print(f"import {a - t:.2f} s torch, {b - a:.2f} s dynamo, {c - b:.2f} s inductor; site-packages writable {os.access(d, os.W_OK)}, dynamo pyc {pyc}")'; }
echo "import probe 1: $(imp)" | tee $OUT/imports.txt; echo "import probe 2: $(imp)" | tee -a $OUT/imports.txt
use() { rm -rf speedrun tests benchmarks; if [ $1 = main ]; then tar xzf .data/cand/main.tgz; else cp -r /tmp/split/* .; fi
  python3 -m pip install -q --no-deps -e . >/dev/null 2>&1; }
launch() {  # launch BUILD N
  use $1; export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$2 TRITON_CACHE_DIR=/tmp/tri_$2
  bash benchmarks/gpu_session.sh launch fast_1gpu > /tmp/launch_$2_$1.txt 2>&1; mv $OUT/launch.txt.xz /tmp/launch_$2_$1_log.txt.xz
  echo "$2 $1: $(grep 'launch to first' /tmp/launch_$2_$1.txt | cut -c1-40) | $(grep 'warm-up step 1/' /tmp/launch_$2_$1.txt)" \
    "| tracing $(grep bytecode_tracing /tmp/launch_$2_$1.txt | awk '{print $2}') | restarts $(xz -dc /tmp/launch_$2_$1_log.txt.xz | grep -c 'Restarting analysis')" \
    "| at $(( $(date +%s) - T0 ))s" | tee -a $OUT/launches.txt
}
launch split 1; launch main 2
use split; export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_s TRITON_CACHE_DIR=/tmp/tri_s
(python3 -m pytest -q tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(python3 -m pytest -q tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py tests/gpu/test_tied_head_gpu.py \
  tests/gpu/test_val_loss_gpu.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 1 $f; done
left=$(( 470 - ($(date +%s) - T0) ))
if [ $left -gt 60 ]; then
  timeout $left python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 --shards "$S" --at-step 900 --at-step 999 \
    --json $OUT/step_split.json > /tmp/step_split.txt 2>&1; echo "step rc $? at $(( $(date +%s) - T0 ))s"; tail -n 4 /tmp/step_split.txt | cut -c1-160
else echo "no time left for the step ($left s)"; fi
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
tar czf $OUT/logs.tgz -C /tmp $(cd /tmp && ls launch_* step_split.txt 2>/dev/null)
