#!/usr/bin/env bash
# Part 29, call E (carry [".data/cand"]; the same machine as calls B-D, shards in /tmp/corpus), written after call D
# with 270 s of device time left and run as this one line: the sampled softmax's second seed (the rule in callC.sh),
# two at once at seed 14, `fast_1gpu` (tied) without and with sampled_head_rows=12288.
tar xzf .data/cand/cand_s28.tgz && LIMIT=255 bash benchmarks/gpu_session.sh ttt s14 --target 3.41 --parallel 2 tie14:fast_1gpu,seed=14 samp14:fast_1gpu,seed=14,sampled_head_rows=12288 > $OUT/ttt.txt 2>&1; echo rc $?; tail -4 $OUT/ttt.txt | cut -c1-250
