#!/usr/bin/env bash
# Part 48, calls K and L (the cases each ran are in part-48.md): Inductor settings never tried on fast_1gpu's step (the "fewer kernel launches"): each one
# alone in a process of its own, against main's default build timed first in the same call, by
# benchmarks/step_time.py at schedule steps 900 (sampled head, window 1664) and 999 (full softmax, window 1792).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
K=experiments/2026-11-25_fast-1gpu-h100/session48/inductor_knobs.py
knob() {  # knob NAME JSON
  timeout ${LIM:-150} python3 $K "$2" --recipe fast_1gpu --steps 30 --at-step 900 --at-step 999 > $OUT/step_$1.txt 2>&1
  echo "$1 rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^inductor config|compile \+ warm-up" $OUT/step_$1.txt | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-120
  grep -E "^ +(900|999) " $OUT/step_$1.txt | cut -c1-60; grep -iE "error|Traceback" $OUT/step_$1.txt | tail -n 2 | cut -c1-200
}
for k in "$@"; do
  case $k in
    base) knob base '{}' ;;
    combo) knob combo '{"combo_kernels": true}' ;;
    aggressive) knob aggressive '{"aggressive_fusion": true}' ;;
    ndtile) knob ndtile '{"triton.prefer_nd_tiling": true, "triton.tile_reductions": true}' ;;
    # call L (a second call on another machine): Hopper's programmatic dependent launch (a kernel's launch overlaps
    # the tail of the one before), reductions split across thread blocks, block pointers for loads and stores
    pdl) knob pdl '{"triton.enable_pdl": true}' ;;
    coop) knob coop '{"triton.cooperative_reductions": true}' ;;
    blockptr) knob blockptr '{"triton.use_block_ptr": true}' ;;
  esac
done
