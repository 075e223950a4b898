#!/usr/bin/env bash
# Part 24, call D (the session's last device seconds; carry [".data/base"]: 800ac2c's Muon, build, train and
# step_time files). Call A's fresh launch took 119.1 s, 26.9 s of it in the optimisers' first step, against 4.9 s in
# part 21's fresh launch (before Muon's step was compiled in three pieces, 056872e). A first version of this call
# (two whole fresh launches) did not fit the device time left after two refused starts; this one times Muon alone:
# `fast_1gpu`'s 42 block matrices with random gradients on the GPU, six Muon steps, in a process of its own for each
# build, each with compile caches of its own (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR): empty (a fresh machine),
# then again warm (the same folders). "new": main's code (momentum + stacking, Newton-Schulz, NorMuon + update, each
# compiled); "base": 800ac2c's (Newton-Schulz and NorMuon compiled, momentum and update eager foreach). Rule, fixed before the run: if new's
# first step takes at least 10 s longer than base's on empty caches, the compiled momentum and update pieces go (they
# took 0.6 ms off a 76 ms step in part 23: about 0.7 s of an 1100-step run).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader
rm -rf /tmp/base && mkdir /tmp/base && cp -r speedrun /tmp/base/ && tar xf .data/base/base.tar -C /tmp/base
cat > /tmp/muon_first_steps.py <<'PY'
import inspect, sys, time, torch
from speedrun.build import build_optimizers
from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe
r = load_recipe("fast_1gpu")
torch.manual_seed(0)
model = GPT(r, attention="flex").cuda()
for p in model.parameters():
    p.grad = torch.randn_like(p) * 1e-3
flag = "compile" if "compile" in inspect.signature(build_optimizers).parameters else "compile_ns"
_, muon = build_optimizers(model, r, **{flag: True})
times = []
for i in range(8):
    torch.cuda.synchronize(); t = time.perf_counter(); muon.step(); torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
print(f"{sys.argv[1]} ({flag}=True): first step {times[0]:.2f} s; steps 3-8 median {1000 * sorted(times[2:])[3]:.2f} ms")
PY
first() {  # label, tree
  (cd $2 && PYTHONPATH=$2 TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$1 TRITON_CACHE_DIR=/tmp/tri_$1 timeout 150 python3 /tmp/muon_first_steps.py "$1 $3") 2>&1 | tail -2 | cut -c1-250
}
first new $PWD empty
first base /tmp/base empty
first new $PWD warm
first base /tmp/base warm
echo "call D done at $(( $(date +%s) - T0 ))s"
