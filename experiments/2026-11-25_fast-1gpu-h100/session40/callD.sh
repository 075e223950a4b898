#!/usr/bin/env bash
# Part 40, call D (written in session 40 before any call; not yet run). A record of `fast_1gpu` as main holds it after
# call C (session37/callC.sh) decides on the split compile: three complete runs, each alone on the GPU, at seeds
# 21 / 22 / 23 (never used before, so not seeds the recipe was tuned on), on the 1-GPU track, in one call on main's
# final commit. Then, here: `speedrun records --new fast-1gpu-h200 LOGS... --target 3.41 --device "1x NVIDIA H200"`.
# Run it on call C's machine right after call C (/tmp/corpus then holds shards 3-4 + val):
# carry [".data/corpus"] (shards 0-2; tree + the full track at once would pass the 64 MiB carry limit).
# The commit is the one checked out here when the call is made (the device gets a copy of the tree, no .git): after
# call C (run from candidates-s37b), `git checkout main` first (at once: an idle machine is let go after 30 s).
# Time: the first launch on the default (empty) compile folders, 80-113 s, the next two warm, 27-41 s (parts 34-37),
# + 3 x 65 s of training + val: about 380 s.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)
[ "$n" = 6 ] || { echo "NOT CALL C'S MACHINE: $n of the track's 6 shards here; carry .data/park in a call before"; exit 3; }
LIMIT=560 bash benchmarks/gpu_session.sh ttt record --target 3.41 --seeds 3 --first-seed 21 fast:fast_1gpu \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -n 6 $OUT/ttt.txt | cut -c1-250
