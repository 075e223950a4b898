#!/usr/bin/env bash
# Part 40, call E (written in session 40 before any call; not yet run): Muon's Newton-Schulz compiled with dynamic
# sizes (branch candidates-s40: `main`'s tree + that one line + its CPU test) against main. Any machine; best right
# after call C (it needs no corpus). Carry [".data/cand"] holding main.tgz (`git archive main speedrun tests
# benchmarks | gzip`) and s40.tgz (the same of candidates-s40). About 330 s.
# The rule, fixed before the call: the candidate goes to main if (1) the mean of its two first Muon steps (compiling
# from empty folders) is at least 1.5 s under main's two, (2) its warm Muon step (median of 50) is at most 1.02x
# main's, and (3) the GPU suite passes on its tree. On this machine's CPU, fast_1gpu's Muon traced 3 graphs instead of
# 4 and its first step took 23.2 s against 30.7 s (Inductor's C++ back-end, float32).
export PYTHONUNBUFFERED=1; T0=$(date +%s); HERE=$(pwd); M=$HERE/experiments/2026-11-25_fast-1gpu-h100/session40/muon_compile.py
cp $M /tmp/muon_compile.py
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -n 2 $OUT/setup.txt | cut -c1-200
for b in main s40; do rm -rf /tmp/tree_$b && mkdir -p /tmp/tree_$b && tar xzf .data/cand/$b.tgz -C /tmp/tree_$b; done
one() {  # one BUILD N: a fresh process on empty compile folders; the tree comes first on the path
  rm -rf /tmp/ind_e$2 /tmp/tri_e$2
  (cd /tmp/tree_$1 && PYTHONPATH=/tmp/tree_$1 TORCHINDUCTOR_CACHE_DIR=/tmp/ind_e$2 TRITON_CACHE_DIR=/tmp/tri_e$2 \
    timeout 240 python3 /tmp/muon_compile.py $1) 2>/tmp/muon_$2_$1.err | tail -n 1 | tee -a $OUT/muon.jsonl
  [ -s /tmp/muon_$2_$1.err ] && tail -n 3 /tmp/muon_$2_$1.err | cut -c1-200
}
one main 1; one s40 2; one s40 3; one main 4
echo "runs done at $(( $(date +%s) - T0 ))s"
python3 - <<'PY' | tee $OUT/table.txt
import json, statistics
import os
rows = [json.loads(l) for l in open(os.environ["OUT"] + "/muon.jsonl") if l.startswith("{")]
by = {b: [r for r in rows if r["label"] == b] for b in ("main", "s40")}
print("| build | first Muon step (s) | graphs | warm Muon step (ms) |\n|---|---|---:|---|")
for b, rs in by.items():
    print(f"| {b} | {' / '.join(str(r['first_step_s']) for r in rs)} | {rs[0]['graphs'] if rs else '-'} | "
          f"{' / '.join(str(r['warm_step_ms']) for r in rs)} |")
if all(len(v) == 2 for v in by.values()):
    first = {b: statistics.mean(r["first_step_s"] for r in rs) for b, rs in by.items()}
    warm = {b: statistics.mean(r["warm_step_ms"] for r in rs) for b, rs in by.items()}
    ok1, ok2 = first["s40"] <= first["main"] - 1.5, warm["s40"] <= 1.02 * warm["main"]
    print(f"first step: {first['s40']:.2f} against {first['main']:.2f} s ({'pass' if ok1 else 'FAIL'}); warm: "
          f"{warm['s40']:.4f} against {warm['main']:.4f} ms, {warm['s40'] / warm['main']:.4f}x ({'pass' if ok2 else 'FAIL'})")
PY
cd /tmp/tree_s40 && export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_es TRITON_CACHE_DIR=/tmp/tri_es
(PYTHONPATH=/tmp/tree_s40 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_gpu.py > $OUT/gpu_a.txt 2>&1) &
(PYTHONPATH=/tmp/tree_s40 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_checkpoint_gpu.py tests/gpu/test_sampled_head_gpu.py \
  tests/gpu/test_tied_head_gpu.py tests/gpu/test_val_loss_gpu.py tests/test_muon.py > $OUT/gpu_b.txt 2>&1) &
wait; echo "suite done at $(( $(date +%s) - T0 ))s"; for f in $OUT/gpu_a.txt $OUT/gpu_b.txt; do tail -n 1 $f; done
xz -9 $OUT/gpu_a.txt $OUT/gpu_b.txt
