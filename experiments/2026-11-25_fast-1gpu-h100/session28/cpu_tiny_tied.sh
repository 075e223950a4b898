#!/usr/bin/env bash
# Part 28, on this machine's CPU (2 cores, torch 2.13.0+cpu): `tied_head` in `tiny`, the README's first job (120 steps
# on the bundled demo corpus), untied and tied at seeds 0, 1, 2, one run after another.
# The rule, fixed here before the runs: `tied_head = true` goes into `tiny` if every tied run ends under its untied
# pair in val, by 0.02 or more on average, and the tied runs' mean wall time is at most 1.05x the untied runs'.
set -u; OUT=${OUT:-/tmp/tiny_tied}; mkdir -p $OUT
for seed in 0 1 2; do
  for v in untied tied; do
    t0=$(date +%s.%N)
    speedrun train --recipe tiny --set seed=$seed --set tied_head=$([ $v = tied ] && echo true || echo false) \
      --log-dir $OUT/$v$seed > $OUT/$v$seed.console.txt 2>&1
    rc=$?; t1=$(date +%s.%N)
    val=$(grep -o "val_loss:[0-9.]*" $OUT/$v$seed/*.txt | tail -1)
    printf "%s seed %s rc %s %s wall %.1f s\n" $v $seed $rc "$val" "$(echo "$t1 - $t0" | bc)"
  done
done
