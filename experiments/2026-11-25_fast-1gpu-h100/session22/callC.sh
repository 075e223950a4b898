#!/usr/bin/env bash
# Part 22, call C (no carry: calls A and B unpacked all five train shards on this machine): `fast_1gpu` with
# `no_attn_layers=[0,7]` (layer 0, which has no MLP in `fast`, loses its attention too: upstream record 35) at seeds
# 7, 8 and 11, three at once (losses only). Without it, this tree: call B.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -2 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" = 5 ]; then
  LIMIT=540 bash benchmarks/gpu_session.sh ttt c --target 3.41 --parallel 3 \
    n7:fast_1gpu,seed=7,no_attn_layers=[0,7] n8:fast_1gpu,seed=8,no_attn_layers=[0,7] \
    n11:fast_1gpu,seed=11,no_attn_layers=[0,7] > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -8 $OUT/ttt.txt | cut -c1-250
else
  echo "NO TRAINING: $n of 5 train shards here (machine changed)"
fi
