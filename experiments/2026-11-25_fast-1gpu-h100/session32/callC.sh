#!/usr/bin/env bash
# Part 32 (planned), call C (call A's machine; carry [".data/park", ".data/cand"]). If call B's rules sent a candidate
# (or both) to main, the GPU suite runs on main + it (the code the merge will have). Otherwise goal 1 again on main as
# it is: `fast_1gpu` (1000 steps) and `record21_1gpu`, each alone (part 30's 0.406x was one pair on another machine).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
d=$(cat /tmp/s32_decision 2>/dev/null); echo "call B's decision: ${d:-missing: not the machine of call A?}"
if [ "$d" = pw ] || [ "$d" = regions ] || [ "$d" = both ]; then
  tar xzf .data/cand/cand_$d.tgz && grep -n "^INDUCTOR_OPTIONS = \|^def share_block_regions" speedrun/build.py
  pip install -q --no-deps -e . > /dev/null 2>&1
  python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1; echo "GPU suite rc $? at $(( $(date +%s) - T0 ))s"
  tail -1 $OUT/gpu_tests.txt; xz -9f $OUT/gpu_tests.txt
else
  n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
  if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
  grep -E "^steps" speedrun/recipes/fast.toml
  LIMIT=560 bash benchmarks/gpu_session.sh ttt g --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu > $OUT/ttt.txt 2>&1
  echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -4 $OUT/ttt.txt | cut -c1-250
fi
