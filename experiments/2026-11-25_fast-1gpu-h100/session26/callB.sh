#!/usr/bin/env bash
# Part 26 (planned; branch candidates-s26), call B (carry [".data/park"]: train shard 4 + val; call A, carrying
# ".data/corpus", unpacked shards 0-3 on this machine): upstream record 45's "refined skips" as two recipe fields,
# each alone and both, on `fast_1gpu` at 1100 steps, four runs at once (losses only), at SEED (default 7):
#   skip47: skip_pairs=[[4,7]] (one skip, block 4's output into block 7's input, instead of the six U-net skips;
#           upstream: removing that one skip cost 0.0025, the other four were not worth their time);
#   lam11:  block_lambda_init=1.1 (each block's x = l0*x + l1*x0 with l0 starting at 1.1; upstream: -0.001);
#   both:   the two together (upstream's record);
# against `fast_1gpu` itself in the same batch (part 25's #127 there: 3.3915). With the sliced validation loss on
# the branch, a final val no longer asks for 24.6 GiB (call B of part 25 lost a run to that).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
SEED=${SEED:-7}
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=560 bash benchmarks/gpu_session.sh ttt s$SEED --target 3.41 --parallel 4 \
  base:fast_1gpu,seed=$SEED "skip47:fast_1gpu,seed=$SEED,skip_pairs=[[4,7]]" \
  lam11:fast_1gpu,seed=$SEED,block_lambda_init=1.1 "both:fast_1gpu,seed=$SEED,skip_pairs=[[4,7]],block_lambda_init=1.1" \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -7 $OUT/ttt.txt | cut -c1-250
