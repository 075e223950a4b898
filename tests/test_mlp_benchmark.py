"""benchmarks/mlp.py on CPU: its arguments and its no-GPU exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchscript import load_benchmark

bench = load_benchmark("mlp")
SCRIPT = Path(bench.__file__)


def test_arguments():
    args = bench.parse_args([])
    assert (args.recipe, args.tokens, args.reps, args.warmup, args.no_compile, args.out) == (
        "fast_1gpu", None, 50, 10, False, None)
    args = bench.parse_args(["--recipe", "record21", "--tokens", "8192", "--reps", "5", "--no-compile", "--out", "x.json"])
    assert (args.recipe, args.tokens, args.reps, args.no_compile, args.out) == ("record21", 8192, 5, True, "x.json")
    for bad in (["--reps", "0"], ["--tokens", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_without_gpu_exits_with_one_line():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(SCRIPT.parents[1]))
    done = subprocess.run([sys.executable, str(SCRIPT), "--reps", "3"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip() == "benchmarks/mlp.py: no CUDA device (torch.cuda.is_available() is False); run it on a GPU"
