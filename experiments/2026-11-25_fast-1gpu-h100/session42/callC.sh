#!/usr/bin/env bash
# Part 42, call C (written after calls A, D and F, with 798 s of device time left): goal 1 on main's final training
# code (acfda4a's; later commits touch plot.py and docs only), as part 34's call F measured it: `fast_1gpu` then
# `record21_1gpu`, each alone, on the 1-GPU track, val at step 0 and the end, in one call. On a fresh machine, after
# `bash benchmarks/gpu_session.sh setup` with carry [".data/park"] (shards 3-4 + val); this call carries [".data/corpus"].
# fast_1gpu's launch is the machine's first (empty compile folders): about 80 s + 65 s of training; record21_1gpu's
# about 240 s in all (part 34: 374 s for the pair with fast warm).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -n 1 $OUT/setup.txt | cut -c1-120
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
[ "$n" = 6 ] || { echo "$n of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
LIMIT=560 bash benchmarks/gpu_session.sh ttt g42 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -n 5 $OUT/ttt.txt | cut -c1-250
