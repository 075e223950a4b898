"""Building the model and its compiled runner on CPU: `CompiledRegions` (the prologue, each block and the output
compiled apart) trains exactly like the model itself, shares one compiled graph between blocks of one layout, does
not recompile from step to step, and holds the model once. The inductor build of it runs on the GPU
(tests/gpu/test_gpu.py); here the regions compile with the aot_eager backend, the same graphs without codegen."""

from __future__ import annotations

import pytest
import torch

from speedrun.build import CompiledRegions, compile_model
from speedrun.data.tokenizer import EOT
from speedrun.model.gpt import GPT, CastedLinear
from speedrun.recipe import load_recipe
from speedrun.step import uncompiled

# fast's features (smear, gates, key offset, MTP, no first MLP, value embeddings, U-net skips) at toy size. Block
# layouts: 0 (long window, no MLP, value embeddings; its input is x0 itself), 1-3 (short), 4 (short, its skip input
# is its input: block 3's output), 5-6 (short, skip input), 7 (long, value embeddings, skip input): five for eight
SMALL = dict(model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128, seq_len=256, val_seq_len=256,
             window_ramp_tokens=256, batch_tokens=256, attn_block_size=32, num_layers=8, window_pattern="LSSSSSSL",
             no_attn_layers=[], value_embeds=1)
LAYOUTS = 5


def row(seed: int, T: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.randint(0, EOT, (T + 1,), generator=torch.Generator().manual_seed(seed))
    t[[0, 90, 91, 200]] = EOT
    return t[:-1].int(), t[1:].long()


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = GPT(load_recipe("fast", SMALL))
    m.lm_head.fp8_scales = None  # FP8 needs a GPU (as build_model plans it on a CPU)
    for module in m.modules():
        if isinstance(module, CastedLinear):
            module.fp8_dynamic = False
    with torch.no_grad():  # zero-initialised gates, smear and projections would hide wiring mistakes
        for name, p in m.named_parameters():
            if name.endswith(("gate_w", "smear_lambda", "c_proj.weight", "lm_head.weight")) or "skip" in name:
                p.normal_(0.3, 0.3)
    return m


def grads(m) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def test_compiled_regions_train_like_the_model(model):
    torch._dynamo.reset()
    runner = CompiledRegions(model, backend="aot_eager")
    inputs, targets = row(1)
    model.set_mtp_step(0)
    got = runner(inputs, targets, 3)
    got.backward()
    got_grads = grads(model)
    model.zero_grad()
    want = model(inputs, targets, 3)
    want.backward()
    assert torch.equal(got, want)
    want_grads = grads(model)
    assert got_grads.keys() == want_grads.keys() and len(want_grads) == len(list(model.parameters()))
    for n in want_grads:
        torch.testing.assert_close(got_grads[n], want_grads[n], rtol=1e-5, atol=1e-6, msg=n)


def test_blocks_of_one_layout_share_a_graph_and_steps_do_not_recompile(model):
    torch._dynamo.reset()
    runner = CompiledRegions(model, backend="aot_eager")
    from torch._dynamo.utils import counters

    counters.clear()
    inputs, targets = row(2)
    runner(inputs, targets, torch.tensor(2)).backward()
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 2 + LAYOUTS  # prologue, output, one per block layout (not one per block)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step, window in [(10, 4), (20, 8)]:  # new windows (tensors) and MTP weights: no new graphs
            model.set_mtp_step(step)
            runner(*row(step), torch.tensor(window)).backward()
    assert counters["stats"]["unique_graphs"] == graphs


def test_validation_after_training_stays_compiled_and_switches_back(model):
    """eval() and train() reach the model; validation compiles its own versions (more than the default limit of 8
    per code object over all block layouts) and training afterwards reuses the first ones."""
    torch._dynamo.reset()
    runner = CompiledRegions(model, backend="aot_eager")
    inputs, targets = row(3)
    runner(inputs, targets, torch.tensor(8)).backward()
    runner.eval()
    assert not model.training and not any(b.training for b in model.blocks)
    with torch.no_grad():
        val = runner(inputs, targets, torch.tensor(8))
    with torch.no_grad():
        assert torch.equal(val, model(inputs, targets, torch.tensor(8)))
    runner.train()
    assert model.training
    with torch._dynamo.config.patch(error_on_recompile=True):
        runner(inputs, targets, torch.tensor(8)).backward()


def test_the_runner_holds_the_model_once():
    m = GPT(load_recipe("tiny"))
    runner = compile_model(m, True)
    assert uncompiled(runner) is m
    assert len(list(runner.parameters())) == len(list(m.parameters()))
    assert list(runner.state_dict()) == [f"_orig_mod.{k}" for k in m.state_dict()]
    assert compile_model(m, False) is m
