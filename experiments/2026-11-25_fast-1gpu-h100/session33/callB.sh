#!/usr/bin/env bash
# Part 33, call B (call A's machine; carry [".data/corpus", ".data/cand"]: train shards 0-2; call A left shards 3-4 and
# val in /tmp/corpus). Five runs at once, losses only (val at the end), 1000 steps, all on the branch's code: `base`
# is `fast_1gpu` with sampled_head_full_tokens=0 (main's recipe; the branch's forward is main's with the field off),
# `part` the branch's `fast_1gpu` at seeds 8, 7 and 13 (the rule is in callA.sh), and a probe, `part_all`: the partial
# full softmax from step 1 on (sampled_head_end_frac=0.001), no step with the whole full softmax, seed 8 only.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > /dev/null 2>&1
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
if [ "$n" != 6 ]; then echo "NOT CALL A'S MACHINE: $n of 6 track files here"; exit 3; fi
rm -rf speedrun tests benchmarks && tar xzf .data/cand/cand.tgz || { echo "NO ARCHIVE"; exit 3; }
grep -n "^sampled_head" speedrun/recipes/fast.toml; pip install -q --no-deps -e . > /dev/null 2>&1
LIMIT=575 bash benchmarks/gpu_session.sh ttt c33 --target 3.41 --parallel 5 base8:fast_1gpu,seed=8,sampled_head_full_tokens=0 \
  part8:fast_1gpu,seed=8 part7:fast_1gpu,seed=7 part13:fast_1gpu,seed=13 \
  partall8:fast_1gpu,seed=8,sampled_head_end_frac=0.001 > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -9 $OUT/ttt.txt | cut -c1-250
