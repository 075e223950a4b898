#!/usr/bin/env bash
# Part 22, call A (carry [".data/corpus"]: train shards 0-3 + val, unpacked for call B):
# 1. the loss kernel alone with the approximate-tanh sigmoid (the new default) and the exact one
#    (`benchmarks/head_loss.py --kernel-only`), and the kernel's GPU tests;
# 2. the step time of `fast_1gpu` (`benchmarks/step_time.py --steps 30`, synthetic tokens, each build alone):
#    this tree ("fast"), the same tree with the exact sigmoid ("exact": a copy in /tmp/exact whose launcher passes
#    FAST=False), and `no_attn_layers=[0,7]` ("noattn0": layer 0 without attention, upstream record 35), alternating.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
python3 benchmarks/head_loss.py --kernel-only --json $OUT/head_loss.json > $OUT/head_loss.txt 2>&1
echo "head_loss rc $? at $(( $(date +%s) - T0 ))s"; tail -6 $OUT/head_loss.txt
python3 -m pytest -q tests/gpu -s -k softcap_cross_entropy_kernel > $OUT/kernel_tests.txt 2>&1
echo "kernel tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "softcap CE|passed|failed" $OUT/kernel_tests.txt | cut -c1-300
rm -rf /tmp/exact && mkdir /tmp/exact && cp -r speedrun benchmarks /tmp/exact/
sed -i 's/FAST=logits.is_cuda if fast_sigmoid is None else fast_sigmoid/FAST=False/' /tmp/exact/speedrun/kernels/softcap_ce.py
grep -c "FAST=False," /tmp/exact/speedrun/kernels/softcap_ce.py
run() {  # label, directory, extra step_time args
  (cd $2 && PYTHONPATH=$2 timeout 200 python3 -c "import speedrun, sys; print('speedrun from', speedrun.__file__)" &&
   PYTHONPATH=$2 timeout 200 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 "${@:3}" \
     --json $OUT/st_$1.json) > $OUT/st_$1.txt 2>&1
  echo "step_time $1 rc $? at $(( $(date +%s) - T0 ))s"; head -1 $OUT/st_$1.txt; tail -3 $OUT/st_$1.txt | cut -c1-200
}
R=$PWD
run fast1 $R
run exact1 /tmp/exact
run noattn0 $R --set "no_attn_layers=[0,7]"
run fast2 $R --profile
run exact2 /tmp/exact
grep -E "GPU idle|_softcap_ce_kernel|kernel family" -A0 $OUT/st_fast2.txt | cut -c1-160
python3 - <<'PY'
import json, os
out = os.environ["OUT"]
print(f"{'run':<9}{'ms first':>10}{'ms final':>10}{'peak GiB':>10}")
for n in ["fast1", "exact1", "noattn0", "fast2", "exact2"]:
    try:
        r = json.load(open(f"{out}/st_{n}.json"))
        rows = r["results"] if "results" in r else r["rows"]
        cells = [f"{x['median_ms']:>10.2f}" for x in rows]
        print(f"{n:<9}{''.join(cells)}{rows[-1].get('peak_alloc_gib', float('nan')):>10.2f}")
    except Exception as e:
        print(n, "no result:", repr(e)[:120])
PY
