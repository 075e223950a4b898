#!/usr/bin/env bash
# Part 28 (planned; branch candidates-s27b), call B (carry [".data/park"], call A's machine): step 2 of part 27's rule,
# tied against base at seeds 11 and 12, four runs at once (losses only); call C does seed 13.
# The rule (part-27.md): the suite passes; every tied run ends under its base, by 0.004 or more on average over
# seeds 11-13; then `tied_head = true` goes into `fast`.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=570 bash benchmarks/gpu_session.sh ttt s1112 --target 3.41 --parallel 4 \
  base11:fast_1gpu,seed=11 tie11:fast_1gpu,seed=11,tied_head=true \
  base12:fast_1gpu,seed=12 tie12:fast_1gpu,seed=12,tied_head=true > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
