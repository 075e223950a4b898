#!/usr/bin/env bash
# Part 46, call C: goal 1's pair on main's final training code, as part 43's call C: `fast_1gpu` (seed 7) then
# `record21_1gpu`, each alone, on the 1-GPU track, val at step 0 and the end, in one call. The machine is fresh:
# call B before it only ran `bash benchmarks/gpu_session.sh setup` with carry [".data/park"] (shards 3-4 + val), which
# compiles nothing, so fast_1gpu's launch here is also goal 3's (empty compile folders). This call carries .data/corpus.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; head -n 1 $OUT/setup.txt | cut -c1-120
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
[ "$n" = 6 ] || { echo "$n of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
ls ~/.cache/torch* /tmp/torchinductor_* 2>/dev/null | head -3; echo "(compile folders above, if any)"
LIMIT=540 bash benchmarks/gpu_session.sh ttt g46 --target 3.41 fast:fast_1gpu,seed=7 record21:record21_1gpu \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; grep -rh "launch_to_first_step_s" /tmp/ttt/g46 2>/dev/null | head; tail -n 5 $OUT/ttt.txt | cut -c1-250
