"""benchmarks/compile_times.py: each compiled graph and the slowest Triton kernels, from torch's structured trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchscript import load_benchmark

ct = load_benchmark("compile_times")


def test_reads_a_real_trace_of_a_forward_and_backward_compile(tmp_path, capsys):
    trace = tmp_path / "trace"
    # aot_eager: the same records as Inductor's, without its C++ compile on a CPU
    code = ("import torch\nf = torch.compile(lambda x: (x.sin() * 2).cos().sum(), backend='aot_eager')\n"
            "x = torch.randn(64, requires_grad=True)\nf(x).backward()\n")
    # empty compile caches: a cached backward graph would load without a record of its own
    env = {**os.environ, "TORCH_TRACE": str(trace), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    records = ct.compilation_records(trace)
    assert [r["pass"] for r in records] == ["forward", "backward"] and records[0]["entire_frame_compile_time_s"] > 0
    assert ct.main([str(trace)]) == 0
    out = capsys.readouterr().out
    assert "0/0         forward" in out and "0/0         backward" in out and "no Triton kernel compile times" in out


def test_lists_the_slowest_kernels_over_every_graph(tmp_path, capsys):
    def line(cid, kernels, key="compilation_metrics"):
        rec = {"compile_id": cid, "co_name": "forward", "graph_node_count": 900, "entire_frame_compile_time_s": 60.0,
               "inductor_compile_time_s": 40.0, "code_gen_time_s": 15.0,
               "triton_kernel_compile_times_us": json.dumps(kernels) if kernels else None}
        return "V1204 16:01:07.481000 6177 torch/_dynamo/utils.py:2009] " + json.dumps({key: rec})

    log = tmp_path / "dedicated_log_torch_trace_x.log"
    log.write_text("\n".join(["V1204 other record", line("0/0", [["triton_tem_flex_fwd", 21_500_000],
                                                                   ["triton_poi_add_3", 400_000]]),
                              line("0/0", [["triton_tem_flex_bwd", 30_000_000]], "bwd_compilation_metrics"),
                              line("1/0", None), 'V1204 x.py:1] {"artifact": {"name": "y"}}']) + "\n")
    assert [n for n, _ in ct.kernel_times(ct.compilation_records(tmp_path))] == [
        "triton_tem_flex_bwd", "triton_tem_flex_fwd", "triton_poi_add_3"]
    assert ct.main([str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 listed, 51.9 s of worker time together" in out
    assert "  30.00  triton_tem_flex_bwd" in out and "triton_poi_add_3" not in out


def test_a_folder_without_trace_logs_is_a_one_line_error(tmp_path, capsys):
    assert ct.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no torch trace logs" in err and "TORCH_TRACE" in err and err.count("\n") == 1
