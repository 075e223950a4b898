"""The byte transpose kernel (speedrun/kernels/transpose.py): in Triton's interpreter against torch's transposed copy,
its CPU fallback, and its input checks."""

import ast
import textwrap

import pytest
import torch

from speedrun.kernels.transpose import transposed_copy

INTERPRETED = textwrap.dedent("""
    import json, torch
    from speedrun.kernels.transpose import transposed_copy
    torch.manual_seed(0)
    out = {}
    # tiles that fit the shape, shapes that leave partial tiles on both edges, a single element, an empty tensor,
    # a row-strided view (a slice of a wider tensor), and both float8 formats and plain bytes
    cases = [((256, 384), (128, 128, 4), torch.float8_e5m2), ((130, 300), (64, 128, 4), torch.float8_e5m2),
             ((257, 129), (128, 64, 8), torch.float8_e4m3fn), ((1, 1), (16, 16, 1), torch.uint8),
             ((0, 5), (16, 16, 1), torch.uint8), ((70, 90), (32, 32, 2), "strided")]
    for shape, (bm, bn, w), dtype in cases:
        raw = torch.randint(0, 256, (shape[0], shape[1] + 7), dtype=torch.uint8)
        if dtype == "strided":
            t = raw[:, 3:3 + shape[1]]
        else:
            t = raw[:, :shape[1]].contiguous().view(dtype)
        got = transposed_copy(t, bm, bn, w, use_triton=True)
        want = t.t().contiguous()
        out[f"{shape}/{dtype}"] = dict(shape=list(got.shape), dtype=str(got.dtype), contiguous=got.is_contiguous(),
                                       exact=torch.equal(got.view(torch.uint8), want.view(torch.uint8)),
                                       same_dtype=got.dtype == t.dtype)
    print(json.dumps(out))
""")


def test_kernel_in_the_triton_interpreter_is_torchs_transpose_bit_for_bit(run_interpreted):
    done, results = run_interpreted(INTERPRETED)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(results) == 6
    for case, r in results.items():
        rows, cols = ast.literal_eval(case.split("/")[0])
        assert r["shape"] == [cols, rows] and r["contiguous"] and r["same_dtype"] and r["exact"], (case, r)


def test_cpu_tensors_take_torchs_copy():
    t = torch.randint(0, 256, (5, 9), dtype=torch.uint8).view(torch.float8_e5m2)
    got = transposed_copy(t)
    assert got.dtype == t.dtype and got.is_contiguous()
    assert torch.equal(got.view(torch.uint8), t.view(torch.uint8).t())


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 4, dtype=torch.uint8), torch.zeros(4, 4, dtype=torch.bfloat16),
                                 torch.zeros(4, 6, dtype=torch.uint8)[:, ::2]], ids=["3-D", "2-byte", "column-stride"])
def test_other_inputs_are_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="one-byte elements with unit column stride"):
        transposed_copy(bad)
