#!/usr/bin/env bash
# Part 28, call D as run (no carry; the same machine): the planned call E's 1000-step half, two at once (losses only).
# Its rule, fixed in the planned callE.sh: `fast` takes fewer steps only if both runs end at or under 3.400.
export PYTHONUNBUFFERED=1
LIMIT=380 bash benchmarks/gpu_session.sh ttt t1000 --target 3.41 --parallel 2 \
  tie1000s7:fast_1gpu,seed=7,tied_head=true,steps=1000 tie1000s8:fast_1gpu,seed=8,tied_head=true,steps=1000 \
  > $OUT/ttt.txt 2>&1
echo "rc $?"; tail -4 $OUT/ttt.txt | cut -c1-250
