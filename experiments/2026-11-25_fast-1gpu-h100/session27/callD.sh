#!/usr/bin/env bash
# Part 27 (branch candidates-s27b), call D (carry [".data/park"]: shard 4 + val, on call C's machine): upstream record
# 51's retied embedding and head as the recipe field `tied_head` (one (50304, 768) table, N(0, 0.005) init, Adam at
# lr_head 0.008), on `fast_1gpu` at 1100 steps, seed 7, three runs at once (losses only):
#   tie:     tied_head=true (the head's FP8 weight scale stays 512: |w| up to 0.875 fits e4m3);
#   tie_w256: tied_head=true, fp8_w_scale=256 (|w| up to 1.75; upstream lowered its head's weight scale with the tie);
# against `fast_1gpu` itself in the same batch. The rule, fixed before the run: `tied_head` goes on in `fast` if the
# better tied run ends at least 0.004 under the base run's val here (twice part 26's same-recipe spread, 0.0015-0.002)
# and its train loss over the last 100 steps is lower too; then confirmed at a second seed before fewer steps are taken.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -1 $OUT/setup.txt | cut -c1-300
n=$(ls /tmp/corpus/corpus_train_00000[0-4].bin 2>/dev/null | wc -l)
if [ "$n" != 5 ]; then echo "NO TRAINING: $n of 5 train shards here"; exit 3; fi
LIMIT=560 bash benchmarks/gpu_session.sh ttt t7 --target 3.41 --parallel 3 \
  base:fast_1gpu,seed=7 tie:fast_1gpu,seed=7,tied_head=true tie_w256:fast_1gpu,seed=7,tied_head=true,fp8_w_scale=256 \
  > $OUT/ttt.txt 2>&1
echo "ttt rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/ttt.txt | cut -c1-250
for f in /tmp/ttt/t7/*/*_1gpu_*.txt; do
  python3 - "$f" <<'PY'
import re, sys
losses = [float(m[1]) for m in re.finditer(r"step:\d+/\d+ train_time:\S+ step_avg:\S+ train_loss:(\S+)", open(sys.argv[1]).read())]
print(sys.argv[1].split("/")[-2], f"train loss, last 100 steps: {sum(losses[-100:]) / len(losses[-100:]):.4f}")
PY
done
