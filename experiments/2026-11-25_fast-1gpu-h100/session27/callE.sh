#!/usr/bin/env bash
# Part 27, call E, as run (the same machine right after call D; 370 s of device time left): call D's rule failed on its
# train-loss half while both tied runs ended 0.011 under the base in val, so instead of the GPU suite planned here
# (only needed if `tied_head` went to main), a second seed: base and tied at seed 8, two at once, losses only.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
LIMIT=320 bash benchmarks/gpu_session.sh ttt t8 --target 3.41 --parallel 2 base:fast_1gpu,seed=8 \
  tie:fast_1gpu,seed=8,tied_head=true > $OUT/ttt8.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt8.txt | cut -c1-250
