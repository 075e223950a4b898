#!/usr/bin/env bash
# Part 28, call C as run (no carry; call B's machine, all five shards there), typed at the prompt after call A's red
# suite: seed 13's pair of part 27's rule, two at once (losses only). The planned call C (branch candidates-s27b) also
# ran the tail average and the sampled softmax on the tie; both were left out (see part-28.md). A first try that
# named the tail-average variant wrongly stopped before training (8.7 s).
export PYTHONUNBUFFERED=1
LIMIT=400 bash benchmarks/gpu_session.sh ttt s13 --target 3.41 --parallel 2 \
  base13:fast_1gpu,seed=13 tie13:fast_1gpu,seed=13,tied_head=true > $OUT/ttt.txt 2>&1
echo "rc $?"; tail -4 $OUT/ttt.txt | cut -c1-250
