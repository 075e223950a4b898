#!/usr/bin/env bash
# Part 23, call A (carry [".data/corpus", ".data/base"]: train shards 0-3 + val, unpacked for call B; the four files
# of 800ac2c that the compiled Muon step changed):
# 1. the compiled Muon step's GPU test (tests/gpu/test_optim_gpu.py);
# 2. FlexAttention with Hopper's TMA loads (`benchmarks/attention.py`, one layer, windows of 7 and 14 blocks);
# 3. `fast_1gpu`'s step (`benchmarks/step_time.py --steps 30`, synthetic tokens, each build alone, alternating):
#    this tree ("new": Muon's step as three compiled pieces per group) against 800ac2c's Muon ("base": a copy of the
#    tree in /tmp/base with the four files put back); the second of each profiled, every kernel in its JSON.
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q -s tests/gpu/test_optim_gpu.py > $OUT/optim_test.txt 2>&1
echo "optim test rc $? at $(( $(date +%s) - T0 ))s"; grep -E "compiled Muon|passed|failed|Error" $OUT/optim_test.txt | cut -c1-300
timeout 150 python3 benchmarks/attention.py --configs default,tma,fwd_tma --windows 7,14 --budget 120 \
  --json $OUT/attention.json > $OUT/attention.txt 2>&1
echo "attention rc $? at $(( $(date +%s) - T0 ))s"; tail -5 $OUT/attention.txt | cut -c1-200
rm -rf /tmp/base && mkdir /tmp/base && cp -r speedrun benchmarks /tmp/base/ && tar xf .data/base/base.tar -C /tmp/base
grep -c "compile_ns" /tmp/base/speedrun/optim/muon.py /tmp/base/benchmarks/step_time.py
run() {  # label, directory, extra step_time args
  (cd $2 && PYTHONPATH=$2 timeout 220 python3 -c "import speedrun; print('speedrun from', speedrun.__file__)" &&
   PYTHONPATH=$2 timeout 220 python3 benchmarks/step_time.py --recipe fast_1gpu --steps 30 "${@:3}" \
     --json $OUT/st_$1.json) > $OUT/st_$1.txt 2>&1
  echo "step_time $1 rc $? at $(( $(date +%s) - T0 ))s"; head -1 $OUT/st_$1.txt; tail -3 $OUT/st_$1.txt | cut -c1-200
}
R=$PWD
run base1 /tmp/base
run new1 $R
run base2 /tmp/base --profile
run new2 $R --profile
for n in base2 new2; do grep -E "Muon.step|Adam.step|GPU idle|total \(GPU" $OUT/st_$n.txt | cut -c1-200; done
python3 - <<'PY'
import json, os
out = os.environ["OUT"]
print(f"{'run':<7}{'ms first':>10}{'ms final':>10}{'peak GiB':>10}{'busy':>8}")
for n in ["base1", "new1", "base2", "new2"]:
    try:
        r = json.load(open(f"{out}/st_{n}.json"))
        cells = "".join(f"{x['median_ms']:>10.2f}" for x in r["rows"])
        print(f"{n:<7}{cells}{r['rows'][-1]['peak_alloc_gib']:>10.2f}{r.get('gpu_busy_ms_per_step', float('nan')):>8.2f}")
    except Exception as e:
        print(n, "no result:", repr(e)[:120])
PY
cd $OUT && tar czf st.tgz st_*.txt st_*.json && rm -f st_*.txt st_*.json
