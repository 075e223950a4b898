#!/usr/bin/env bash
# Part 23, call B (carry [".data/corpus"]: train shards 0-3 + val, unpacked for call C): the GPU tests on the final
# code of this session (`pytest tests/gpu`, alone on the GPU).
export PYTHONUNBUFFERED=1; T0=$(date +%s)
bash benchmarks/gpu_session.sh setup > $OUT/setup.txt 2>&1; tail -3 $OUT/setup.txt | cut -c1-300
python3 -m pytest -q tests/gpu -s > $OUT/gpu_tests.txt 2>&1
echo "tests rc $? at $(( $(date +%s) - T0 ))s"; grep -E "^Muon, 3|softcap CE kernel, fast" $OUT/gpu_tests.txt | cut -c1-300
tail -2 $OUT/gpu_tests.txt
