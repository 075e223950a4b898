#!/usr/bin/env bash
# Part 35, call A (fresh machine; carry [".data/park", ".data/cand"]): the script part 34 left for this call, run as it is.
exec bash experiments/2026-11-25_fast-1gpu-h100/session34/next_candidates.sh
