#!/usr/bin/env bash
# Part 22, call D (no carry; the machine of calls A-C, all five shards unpacked): `fast_1gpu` with
# `no_attn_layers=[0,7]` at seed 7, alone (a training time, not only a loss), inside the session's last 241 s.
LIMIT=195 bash benchmarks/gpu_session.sh ttt d --target 3.41 n7solo:fast_1gpu,seed=7,no_attn_layers=[0,7] > $OUT/ttt.txt 2>&1
echo rc $?; tail -4 $OUT/ttt.txt | cut -c1-250
