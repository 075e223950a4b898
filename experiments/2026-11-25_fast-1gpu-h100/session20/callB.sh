#!/usr/bin/env bash
# Part 20, call B (carry [".data/corpus"]: train shards 0-3 + val; call A unpacked shard 4 on this machine): goal 1 in
# one call, each run alone: `fast_1gpu` at seed 11, then `record21_1gpu` at seed 0. Refuses to train unless all five
# train shards are there (part 19's call B landed on a fresh machine and trained on four: its losses were invalid).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
[ "$n" = 5 ] || { echo "ABORT: $n of 5 train shards here (machine changed since call A)"; exit 3; }
LIMIT=585 bash benchmarks/gpu_session.sh ttt b --target 3.41 f11:fast_1gpu,seed=11 r0:record21_1gpu,seed=0 \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/b/ | head; tail -5 $OUT/ttt.txt
