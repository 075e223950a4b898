"""benchmarks/newton_schulz.py on CPU: its arguments, the Muon batches it derives, and its no-GPU exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchscript import load_benchmark

bench = load_benchmark("newton_schulz")
SCRIPT = Path(bench.__file__)


def test_arguments():
    args = bench.parse_args([])
    assert (args.recipe, args.reps, args.warmup, args.no_compile, args.out) == ("fast_1gpu", 50, 10, False, None)
    args = bench.parse_args(["--recipe", "record21", "--reps", "5", "--no-compile", "--out", "x.json"])
    assert (args.recipe, args.reps, args.no_compile, args.out) == ("record21", 5, True, "x.json")
    with pytest.raises(SystemExit):
        bench.parse_args(["--reps", "0"])


def test_muon_batches_of_the_recipes():
    """fast_1gpu: 11 attention layers x (3 QKV slices + c_proj), 11 MLPs x (c_fc^T, c_proj), wide, largest first."""
    assert bench.muon_batches("fast_1gpu") == [(22, 768, 3072), (44, 768, 768)]
    assert bench.muon_batches("record21") == [(24, 768, 3072), (44, 768, 768)]  # every layer has an MLP
    assert bench.orthogonalizer("fast_1gpu")[1].startswith("polar_express")
    assert bench.orthogonalizer("record21")[1].startswith("newton_schulz")


def test_without_gpu_exits_with_one_line():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(SCRIPT.parents[1]))
    done = subprocess.run([sys.executable, str(SCRIPT), "--reps", "3"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip() == ("benchmarks/newton_schulz.py: no CUDA device (torch.cuda.is_available() is False); "
                                   "run it on a GPU")
