#!/usr/bin/env bash
# Part 25 (planned), call B (carry [".data/park"]: train shard 4 + val; call A, carrying ".data/corpus", unpacked
# shards 0-3 on this machine: e.g. part 24's callA.sh, which also times a fresh launch): three upstream ideas, each one
# change on `fast_1gpu` at 1100 steps, four runs at once beside nothing else (losses only: they share the GPU), at
# SEED (default 7; call C repeats at 8):
#   nout:  normuon_output_axis=true (NorMuon over each matrix's output neurons; upstream #42 found the output axis
#          better; ours normalises the MLP's output projection over its input columns);
#   betas: head_embed_adam_betas=[0.5,0.95], value_embed_adam_betas=[0.75,0.95] (upstream #57's module betas);
#   nb2:   normuon_beta2=0.9 (upstream #78);
# against `fast_1gpu` itself in the same batch. Part 24's 1100-step runs: seed 7 3.3897-3.3920, seed 8 3.3927.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
SEED=${SEED:-7}
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=560 bash benchmarks/gpu_session.sh ttt s$SEED --target 3.41 --parallel 4 \
  base:fast_1gpu,seed=$SEED nout:fast_1gpu,seed=$SEED,normuon_output_axis=true \
  "betas:fast_1gpu,seed=$SEED,head_embed_adam_betas=[0.5,0.95],value_embed_adam_betas=[0.75,0.95]" \
  nb2:fast_1gpu,seed=$SEED,normuon_beta2=0.9 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -7 $OUT/ttt.txt | cut -c1-250
