"""The GPU benchmarks on a machine without one: a one-line error and exit status 2, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["step_time", "head_loss", "attention", "muon_step"])
def test_gpu_benchmark_without_a_gpu_says_so(name):
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"{name}: needs a CUDA GPU"]


def test_muon_step_inductor_settings_are_python_literals():
    from benchscript import load_benchmark

    muon_step = load_benchmark("muon_step")
    assert muon_step.parse_settings(["combo_kernels=True", " max_pointwise_cat_inputs = 64"]) == {
        "combo_kernels": True, "max_pointwise_cat_inputs": 64}
    assert muon_step.parse_settings([]) == {}
    for bad in ["combo_kernels", "=True", "combo_kernels=yes please"]:
        with pytest.raises(SystemExit, match="is not KEY=VALUE"):
            muon_step.parse_settings([bad])


def test_step_time_kernel_families_count_device_kernels_once():
    """The profile's family table: CPU ops and optimiser annotations repeat their kernels' time, so only
    device-side kernel events count (the first GPU profile summed both: 179 ms of kernels in an 88 ms step)."""
    from types import SimpleNamespace as Event

    from benchscript import load_benchmark
    from torch.autograd import DeviceType

    step_time = load_benchmark("step_time")
    per_step = lambda ms: ms * 1000 * step_time.PROFILED_STEPS  # microseconds over the profiled steps
    cuda, cpu = DeviceType.CUDA, DeviceType.CPU
    events = [Event(key="triton_tem_fused_flex_attention_backward_1", device_type=cuda, self_device_time_total=per_step(13)),
              Event(key="triton_tem_fused_flex_attention_backward_1", device_type=cpu, self_device_time_total=per_step(13)),
              Event(key="aten::mm", device_type=cpu, self_device_time_total=per_step(11)),
              Event(key="nvjet_sm90_tst_192x192_64x3", device_type=cuda, self_device_time_total=per_step(11)),
              Event(key="nvjet_sm90_qqtst_192x192_128x4", device_type=cuda, self_device_time_total=per_step(5)),
              Event(key="Optimizer.step#Muon.step", device_type=cuda, self_device_time_total=per_step(5)),
              Event(key="_softcap_ce_kernel", device_type=cuda, self_device_time_total=per_step(4.5)),
              Event(key="_relu2_fp8_kernel", device_type=cuda, self_device_time_total=per_step(2.5))]
    rows = dict(line.rsplit(None, 1) for line in step_time.kernel_categories(step_time.device_kernels(events)).splitlines()[1:])
    rows = {k.strip(): float(v) for k, v in rows.items()}
    # our ReLU² + FP8 cast kernel is element-wise: it must not count as a matmul for the "fp8" in its name
    assert rows == {"attention (flex templates)": 13.0, "matmul": 11.0, "fp8 matmul": 5.0, "loss kernel": 4.5,
                    "fp8 casts (ReLU² kernel)": 2.5, "total (GPU busy)": 36.0}
    # with the unprofiled step time: what the GPU spends waiting
    table = step_time.kernel_categories(step_time.device_kernels(events), step_ms=38.5)
    assert table.splitlines()[-1].split() == ["GPU", "idle", "(median", "step", "-", "busy)", "2.50"]


def test_step_time_kernel_list_keeps_whole_names():
    """The per-kernel list: device kernels only, longest first, names whole (Inductor's name every op it fused, past
    the profiler table's 90 characters), each with its family."""
    from types import SimpleNamespace as Event

    from benchscript import load_benchmark
    from torch.autograd import DeviceType

    step_time = load_benchmark("step_time")
    per_step = lambda ms: ms * 1000 * step_time.PROFILED_STEPS
    long_name = "triton_poi_fused__fused_rms_norm__scaled_mm__to_copy_clamp_clone_exp2_floor_log2_mul_permute_pow_relu_7"
    events = [Event(key="aten::_scaled_mm", device_type=DeviceType.CPU, self_device_time_total=per_step(9)),
              Event(key="nvjet_sm90_qqtst_192x192_128x4", device_type=DeviceType.CUDA, self_device_time_total=per_step(2)),
              Event(key=long_name, device_type=DeviceType.CUDA, self_device_time_total=per_step(3.5))]
    kernels = step_time.device_kernels(events)
    assert kernels == [(long_name, 3.5, "fused elementwise/reductions"), ("nvjet_sm90_qqtst_192x192_128x4", 2.0, "fp8 matmul")]
    lines = step_time.kernel_list(kernels, top=1).splitlines()
    assert len(lines) == 2 and lines[1].endswith(long_name) and lines[1].split()[0] == "3.50"


def test_step_time_counts_the_pairs_the_mask_allows():
    """The TFLOP/s column's attention term: attended_pairs against the rule's dense mask."""
    from benchscript import load_benchmark

    from speedrun.data.tokenizer import EOT
    from speedrun.model.attention import reference_mask

    step_time = load_benchmark("step_time")
    tokens = torch.randint(0, 1000, (512,), generator=torch.Generator().manual_seed(0))
    tokens[[0, 37, 200, 201, 450]] = EOT
    for w in (1, 2, 5):
        assert step_time.attended_pairs(tokens, w, 32) == int(reference_mask(tokens, w, 32).sum())


def test_power_sampler_keeps_the_samples_its_command_prints_while_the_block_runs():
    """benchmarks/gpu_power.py with a stand-in for nvidia-smi: the samples printed while the block runs are kept
    (lines that are not samples skipped), the process is stopped at the block's end, and the summary is theirs."""
    import shutil
    import time

    from benchscript import load_benchmark

    gpu_power = load_benchmark("gpu_power")
    script = ("import sys, time\n"
              "for line in ['690.5, 1890, Active', '[N/A], 1980, Not Active', 'garbage', '650.0, 1980, Not Active',\n"
              "             '700.0, 1800, Active']:\n"
              "    print(line, flush=True); time.sleep(0.05)\n"
              "time.sleep(60)\n")
    with gpu_power.PowerSampler([sys.executable, "-c", script]) as power:
        deadline = time.monotonic() + 30
        while len(power.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert power._proc.poll() is not None  # stopped, not left sleeping
    s = power.summary()
    assert s["samples"] == 3 and s["median_w"] == 690.5 and s["median_sm_mhz"] == 1890
    assert abs(s["mean_w"] - (690.5 + 650 + 700) / 3) < 1e-9 and abs(s["power_capped"] - 2 / 3) < 1e-9
    assert 0 < s["seconds"] < 30
    # no command: nothing sampled; no nvidia-smi: for_device samples nothing rather than failing
    with gpu_power.PowerSampler(None) as idle:
        pass
    assert idle.summary() is None
    if shutil.which("nvidia-smi") is None:
        assert gpu_power.PowerSampler.for_device("GPU-0").command is None
    assert gpu_power.nvidia_smi_command(gpu_power.FIELDS, "GPU-ab", 50) == [
        "nvidia-smi", "--query-gpu=power.draw.instant,clocks.sm,clocks_event_reasons.sw_power_cap",
        "--format=csv,noheader,nounits", "-lms=50", "--id=GPU-ab"]
    assert gpu_power.parse_sample(" 12.5 , 345 , Not Active ") == (12.5, 345.0, False)


def test_step_time_power_table_gives_energy_a_step():
    """--power's figures: energy a step is the mean power times the window's wall time over its steps."""
    from benchscript import load_benchmark

    step_time = load_benchmark("step_time")
    summary = dict(samples=40, median_w=691.0, mean_w=680.0, median_sm_mhz=1890.0, power_capped=0.75, seconds=2.5)
    row = step_time.power_row(summary, steps=30)
    assert abs(row["joules_per_step"] - 680.0 * 2.5 / 30) < 1e-9 and step_time.power_row(None, 30) is None
    table = step_time.power_table([dict(at_step=999, power=row), dict(at_step=900, power=None)]).splitlines()
    assert table[1].split() == ["999", "691", "680", "1890", "75%", "56.7", "40"]
    assert table[2].split() == ["900", "no", "samples"]
