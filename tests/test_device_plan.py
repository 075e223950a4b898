"""Device plans on other hardware, by forcing the capability checks: FP8 falls back to bf16 below compute
capability 8.9 with a notice, GPU-only recipes refuse CPUs unless forced, the tiny recipe runs anywhere."""

import pytest
import torch

from speedrun.errors import TrainingError
from speedrun.plan import make_plan
from speedrun.recipe import RecipeError, load_recipe


def fake_gpu(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"Fake GPU sm{capability[0]}{capability[1]}")


@pytest.mark.parametrize("capability", [(7, 0), (8, 0), (8, 6)])
def test_fp8_head_falls_back_to_bf16_below_sm89(monkeypatch, capability):
    fake_gpu(monkeypatch, capability)
    plan = make_plan(load_recipe("record21"))
    assert plan.device.type == "cuda" and plan.attention == "flex" and plan.compile
    assert plan.fp8_head is False
    notes = " ".join(plan.notes)
    assert "FP8" in notes and "bf16" in notes and "8.9" in notes
    assert "head matmul: plain (no FP8)" in plan.describe(load_recipe("record21"))


@pytest.mark.parametrize("capability", [(8, 9), (9, 0), (10, 0)])
def test_fp8_head_kept_on_fp8_gpus(monkeypatch, capability):
    fake_gpu(monkeypatch, capability)
    plan = make_plan(load_recipe("record21"))
    assert plan.fp8_head is True and not plan.notes


def test_fp8_off_in_recipe_stays_off(monkeypatch):
    fake_gpu(monkeypatch, (9, 0))
    plan = make_plan(load_recipe("record21", ["fp8_head=false"]))
    assert plan.fp8_head is False and not plan.notes


def test_model_built_for_a_pre_fp8_plan_has_no_fp8_head(monkeypatch):
    from speedrun.model.gpt import GPT

    fake_gpu(monkeypatch, (8, 0))
    r = load_recipe("tiny", ["fp8_head=true"])
    plan = make_plan(r)
    assert plan.fp8_head is False
    model = GPT(r)
    assert model.lm_head.fp8_scales is not None  # the recipe asks for it ...
    from speedrun.build import build_model

    plan.device = torch.device("cpu")  # build where we can; the plan decided FP8 off
    assert build_model(r, plan).lm_head.fp8_scales is None  # ... the built model follows the plan


def test_gpu_only_recipe_refuses_cpu_unless_forced(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match="GPU-only.*no CUDA GPU.*--device cpu"):
        make_plan(load_recipe("record21"))
    plan = make_plan(load_recipe("record21"), force_device="cpu")
    assert plan.device.type == "cpu" and plan.attention == "dense" and not plan.fp8_head


def test_cuda_forced_without_gpu_refuses(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match="no CUDA GPU"):
        make_plan(load_recipe("tiny"), force_device="cuda")


@pytest.mark.parametrize("gpu", [False, True])
def test_tiny_runs_anywhere(monkeypatch, gpu):
    if gpu:
        fake_gpu(monkeypatch, (7, 5))
    else:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = make_plan(load_recipe("tiny"))
    assert plan.device.type == ("cuda" if gpu else "cpu")


def test_fused_head_loss_follows_the_fp8_head(monkeypatch):
    """fast fuses the head with its loss where FP8 runs; below sm89 both fall back, and the notes say so."""
    fast = load_recipe("fast")
    fake_gpu(monkeypatch, (9, 0))
    plan = make_plan(fast)
    assert plan.fp8_head and not plan.notes
    assert "FP8 (e4m3/e5m2) in training; fused with the soft-capped loss" in plan.describe(fast)
    fake_gpu(monkeypatch, (8, 0))
    plan = make_plan(fast)
    assert not plan.fp8_head and "fused with" not in plan.describe(fast)
    assert any("fused_head_loss" in n and "unfused" in n for n in plan.notes)


def test_fp8_mlp_follows_fp8_support_and_build_model_clears_it(monkeypatch):
    """fp8_mlp runs where FP8 tensor cores are; below sm89 and on CPU the MLP stays plain, and the notes say so."""
    from speedrun.build import build_model

    r = load_recipe("fast_1gpu", ["fp8_mlp=true"])
    fake_gpu(monkeypatch, (9, 0))
    plan = make_plan(r)
    assert plan.fp8_mlp and "MLP matmuls: FP8" in plan.describe(r)
    fake_gpu(monkeypatch, (8, 0))
    plan = make_plan(r)
    assert not plan.fp8_mlp and "MLP matmuls: plain" in plan.describe(r)
    assert any("MLP runs in bf16" in n for n in plan.notes)
    assert not make_plan(load_recipe("fast_1gpu")).fp8_mlp  # off unless asked for
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    small = load_recipe("tiny", ["fp8_mlp=true"])
    plan = make_plan(small)
    assert not plan.fp8_mlp and any("FP8 MLP needs a GPU" in n for n in plan.notes)
    model = build_model(small, plan)
    flags = [b.mlp.c_fc.fp8_dynamic or b.mlp.c_proj.fp8_dynamic for b in model.blocks if b.mlp is not None]
    assert flags and not any(flags)


@pytest.mark.parametrize("value, compiled", [("auto", True), ("on", True), ("off", False)])
def test_compile_values_on_a_gpu(monkeypatch, value, compiled):
    fake_gpu(monkeypatch, (9, 0))
    r = load_recipe("fast_1gpu", [f"compile={value}"])
    plan = make_plan(r)
    assert plan.compile == compiled
    assert f"torch.compile: {'on' if compiled else 'off'}" in plan.describe(r)


def test_removed_tuned_compile_is_refused_with_its_commit_and_the_inductor_option():
    with pytest.raises(RecipeError, match=r"compile='tuned' was removed .*abc2775.*TORCHINDUCTOR_COORDINATE_DESCENT"):
        load_recipe("tiny", ["compile=tuned"])


def test_removed_graphs_compile_is_refused_with_its_commit():
    with pytest.raises(RecipeError, match=r"compile='graphs' was removed .*01dfd43"):
        load_recipe("tiny", ["compile=graphs"])


def test_plan_for_a_given_world_size(monkeypatch):
    """A dry run's --nproc N: the plan for N ranks, as rank 0, whatever torchrun's variables say."""
    monkeypatch.setenv("WORLD_SIZE", "4"), monkeypatch.setenv("RANK", "3"), monkeypatch.setenv("LOCAL_RANK", "3")
    r = load_recipe("tiny", ["batch_tokens=4096"])
    plan = make_plan(r, force_device="cpu", world_size=2)
    assert (plan.world_size, plan.rank, plan.local_rank, plan.main) == (2, 0, 0, True)
    assert "batch: 4,096 tokens/step = 2 rank(s) x 2 accumulation step(s)" in plan.describe(r)
    assert make_plan(r, force_device="cpu").world_size == 4  # without it: torchrun's
    with pytest.raises(RecipeError, match="world size 3"):
        make_plan(r, force_device="cpu", world_size=3)
