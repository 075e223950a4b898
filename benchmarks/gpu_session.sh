#!/usr/bin/env bash
# One GPU-machine session: install, unpack the carried corpus, GPU tests, step-time benchmark (+ profile),
# and optionally the full 1-GPU-track run. Usage on the device: bash benchmarks/gpu_session.sh [setup|tests|bench|accum|track|all]
# (setup: install and unpack the corpus only), or
#   LIMIT=540 bash benchmarks/gpu_session.sh ttt NAME [time_to_target.py args: --target, --parallel, variants ...]
# which runs benchmarks/time_to_target.py on the 1-GPU track (val at step 0 and the end only) under a LIMIT-second
# deadline and packs its logs into $OUT/NAME.tgz: one file however many variants (the device returns 8 files at most), or
#   bash benchmarks/gpu_session.sh suite
# which runs tests/gpu in two parallel halves (test_gpu.py, the other files) and, beside them on the machine's CPUs, the
# CPU tests marked slow that a plain `pytest` (CI) leaves out, with compile folders of their own, so that a launch later
# in the same call still meets empty default folders; summaries last, outputs to $OUT/gpu_{a,b}.txt.xz and
# $OUT/slow.txt.xz, or
#   bash benchmarks/gpu_session.sh launch [RECIPE]
# which times a launch (default fast_1gpu: 30 steps on random tokens; issue 19's goal 3 wants it first on a fresh
# machine, so on empty compile folders) and prints TorchDynamo's compile-time table; its printout goes to $OUT/launch.txt.xz.
# With TRACE=1 it also writes torch's structured trace and prints each compiled graph and the Triton kernels that took
# longest to compile (benchmarks/compile_times.py; to $OUT/compile_times.txt): the trace's writing lengthens that launch.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,uuid --format=csv,noheader  # uuid: same machine as the last call?
# compile time (goal 3's launch) follows the host's CPU: part 58's fresh H100 compiled 1.4-1.7x slower than part 54's
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) usable cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
# The shards may come over several calls (.data/corpus, .data/park, ...: tree + carry must stay under 64 MiB);
# /tmp/corpus keeps what earlier calls on the same machine unpacked.
if [ -d .data ]; then
  python3 - <<'PY'
import lzma, shutil, pathlib
dst = pathlib.Path("/tmp/corpus"); dst.mkdir(exist_ok=True)
for f in sorted(pathlib.Path(".data").glob("*/*.bin.xz")):
    out = dst / f.name[:-3]
    if not out.exists():
        with lzma.open(f) as a, open(out, "wb") as b: shutil.copyfileobj(a, b, 1 << 24)
print("corpus:", sorted(p.name for p in dst.glob("*.bin")))
PY
fi
TRACK=(--set "train_files=/tmp/corpus/corpus_train_00000[0-4].bin" --set val_files=/tmp/corpus/corpus_val_000000.bin --set val_tokens=2097152)
if [ "$what" = ttt ]; then
  name=$2; shift 2
  # timeout signals its whole process group, so the training processes that time_to_target.py starts stop too
  timeout "${LIMIT:-540}" python3 benchmarks/time_to_target.py --out "/tmp/ttt/$name" "${TRACK[@]}" --set val_every=0 "$@"
  rc=$?
  tar czf "$OUT/$name.tgz" --exclude=checkpoints -C /tmp/ttt "$name"  # weights stay on the device (1 GB each)
  exit $rc
fi
if [ "$what" = suite ]; then
  export TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
  others=$(ls tests/gpu/test_*.py | grep -v '/test_gpu.py$')
  python3 -m pytest -q tests/gpu/test_gpu.py > "$OUT/gpu_a.txt" 2>&1 & a=$!
  python3 -m pytest -q $others > "$OUT/gpu_b.txt" 2>&1 & b=$!
  python3 -m pytest -q -m slow tests > "$OUT/slow.txt" 2>&1 & c=$!
  wait $a; rc_a=$?; wait $b; rc_b=$?; wait $c; rc_c=$?
  tail -qn 1 "$OUT/gpu_a.txt" "$OUT/gpu_b.txt" "$OUT/slow.txt"
  xz -9f "$OUT/gpu_a.txt" "$OUT/gpu_b.txt" "$OUT/slow.txt"
  exit $(( rc_a || rc_b || rc_c ))
fi
if [ "$what" = launch ]; then
  recipe=${2:-fast_1gpu}
  echo "inductor cache folders before: $(ls -d /tmp/torchinductor_* 2>/dev/null | wc -l)"
  python3 - "$recipe" <<'PY'
import sys, pathlib, numpy as np
from speedrun.data.shards import write_shard
from speedrun.recipe import load_recipe
r, d = load_recipe(sys.argv[1]), pathlib.Path("/tmp/launch")
d.mkdir(exist_ok=True)
# Zipf-distributed ids (exponent 1.1): about 9,000 distinct tokens in 49,152, as in the corpus's text. Uniform ids hold
# ~31,000, more than fast's sampled head keeps (12,288 rows), and the run would end at that check's error.
rng = np.random.default_rng(0)
p = 1.0 / np.arange(1, 50258) ** 1.1
tokens = lambda n: rng.choice(50257, size=n, p=p / p.sum()).astype(np.uint16)
write_shard(d / "train_000000.bin", tokens(30 * r.batch_tokens + 1))
write_shard(d / "val_000000.bin", tokens(262144 + 1))
PY
  # TORCH_LOGS=dynamo: the compile-time table at exit (where torch.compile's seconds go)
  rm -rf /tmp/launch/trace
  [ "${TRACE:-0}" = 1 ] && export TORCH_TRACE=/tmp/launch/trace
  TORCH_LOGS=dynamo timeout 300 speedrun train --recipe "$recipe" --set steps=30 --set train_files=/tmp/launch/train_000000.bin \
    --set val_files=/tmp/launch/val_000000.bin --set val_tokens=262144 --set val_every=0 --no-final-checkpoint \
    --print-every 10 --log-dir /tmp/launch/logs > "$OUT/launch.txt" 2>&1
  rc=$?
  grep -E "^warm-up step 1/|^warm-up:|launch to first|peak memory" "$OUT/launch.txt" | cut -c1-250
  grep "utils.py:910\]" "$OUT/launch.txt" | sed 's/.*utils.py:910\] //' |
    grep -E "^(Function|bytecode_tracing|aot_trace_joint|compile_fx.<locals>|GraphLowering.(run|codegen)|async_compile.wait|CachingAutotuner)"
  xz -9f "$OUT/launch.txt"
  [ "${TRACE:-0}" = 1 ] && python3 benchmarks/compile_times.py /tmp/launch/trace --top 20 | tee "$OUT/compile_times.txt"
  exit $rc
fi
case $what in tests|all) python3 -m pytest -q tests/gpu -s 2>&1 | tee "$OUT/gpu_tests.txt" ;; esac
case $what in bench|all) python3 benchmarks/step_time.py --recipe record21_1gpu --steps 40 --profile --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt" ;; esac
case $what in accum|all) python3 benchmarks/step_time.py --recipe record21 --steps 8 --warmup 2 --at-step 0 --json "$OUT/bench_accum8.json" 2>&1 | tee "$OUT/bench_accum8.txt" ;; esac
case $what in track|all) speedrun train --recipe record21_1gpu "${TRACK[@]}" --log-dir "$OUT/logs" --print-every 125 2>&1 | tee "$OUT/track.txt" ;; esac
