"""benchmarks/relu2_fp8.py: launch configurations from the command line, throughput and the table (the timing
itself needs a GPU: run it on one)."""

from __future__ import annotations

import pytest
import torch
from benchscript import load_benchmark

bench = load_benchmark("relu2_fp8")


def test_configs_parse_with_the_default_first_and_no_repeats():
    assert bench.parse_configs("128x64x4,64x128x8,128x64x4") == [bench.DEFAULT, (128, 64, 4)]
    grid = bench.parse_configs(None)
    assert grid[0] == bench.DEFAULT and len(grid) == len(set(grid)) == 16
    assert all(bn * bh <= 16384 for bn, bh, _ in grid)


@pytest.mark.parametrize("bad, why", [("64x128", "is not BLOCK_NxBLOCK_HxWARPS"), ("64x0x8", "is not"),
                                      ("48x128x8", "powers of two"), ("64xabcx8", "is not")])
def test_bad_configs_are_one_line_errors(bad, why):
    with pytest.raises(SystemExit, match=why):
        bench.parse_configs(bad)


def test_throughput_counts_the_least_bytes_each_call_moves():
    # 1000 x 1000 elements in 1 ms: 3 bytes each for the forward casts, 6 for the gradient's
    assert bench.gbps("fwd", 1000, 1000, 1.0) == pytest.approx(3.0)
    assert bench.gbps("both", 1000, 1000, 1.0) == pytest.approx(4.0)  # one bf16 read, two e4m3 writes
    assert bench.gbps("grad", 1000, 1000, 1.0) == pytest.approx(6.0)


def test_table_names_the_fastest_config_whose_output_is_the_same():
    rows = [dict(mode="fwd", config="64x128x8", ms=0.20, gbps=2000, ratio=1.0, same=True),
            dict(mode="fwd", config="32x256x4", ms=0.10, gbps=4000, ratio=0.5, same=False),
            dict(mode="fwd", config="128x64x4", ms=0.15, gbps=3000, ratio=0.75, same=True)]
    text = bench.table(rows)
    assert "DIFFERS" in text.splitlines()[2]
    assert text.splitlines()[-1] == "best: fwd 128x64x4 0.1500 ms (0.750x)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_it_says_so_and_exits_2(capsys):
    assert bench.main(["--configs", "64x128x8"]) == 2
    assert capsys.readouterr().err.strip() == "relu2_fp8: needs a CUDA GPU"
