"""GPU check of the sampled head (sampled_head_rows) under torch.compile: the fused FP8 head + loss over the sampled
rows against the unfused FP8 head over the same rows (multi-token targets on), gradients only in those rows; then the
switch to the full softmax, through the trainer's runner, recompiles the head and matches the unfused loss there."""

from types import SimpleNamespace

import pytest
import torch
from test_gpu import SMALL_MODEL, fused_and_unfused_models, rel_err

from speedrun.build import compiled_runner
from speedrun.model.fp8 import fp8_supported
from speedrun.model.mtp import mtp_targets
from speedrun.model.sampled_head import candidate_rows
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and fp8_supported()),
                                reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")


def test_compiled_sampled_head_matches_unfused_and_switches_to_full():
    r = load_recipe("fast", [*SMALL_MODEL, "sampled_head_rows=8192", "sampled_head_end_frac=0.5"])
    models, inputs, targets = fused_and_unfused_models(r, seed=6)
    window = torch.tensor(7, device="cuda")
    losses, grads = [], []
    for m in models:
        m.set_step(0)
        assert m.head_rows == 8192
        loss = torch.compile(m, dynamic=False)(inputs, targets, window)
        loss.backward()
        losses.append(loss.item())
        grads.append(m.lm_head.weight.grad.float())
        m.zero_grad(set_to_none=True)
    ids, *_ = candidate_rows(targets, mtp_targets(targets, 2), r.padded_vocab, 8192)
    outside = torch.ones(r.padded_vocab, dtype=torch.bool, device="cuda")
    outside[ids] = False
    err = rel_err(grads[0], grads[1])
    print(f"\nsampled head, compiled: fused {losses[0]:.5f} vs unfused {losses[1]:.5f}; head grad error {err:.4f}")
    assert abs(losses[0] - losses[1]) < 1e-3 * losses[1] and err < 0.03
    assert grads[0][outside].abs().max() == 0 and grads[0][ids].abs().max() > 0
    assert models[0].head_left_out.item() == 0

    # the switch to the full softmax, against the unfused model there, through the trainer's runner (trunk and head
    # compiled as two frames: the switch compiles a second head graph)
    runners = [compiled_runner(m, SimpleNamespace(compile=True)) for m in models]
    full = []
    for m, run in zip(models, runners):
        m.set_step(r.steps // 2)
        assert m.head_rows == 0
        full.append(run(inputs, targets, window).item())
    models[0].set_step(0)
    again = runners[0](inputs, targets, window).item()
    print(f"full softmax: fused {full[0]:.5f} vs unfused {full[1]:.5f}; sampled again {again:.5f}")
    assert abs(full[0] - full[1]) < 1e-3 * full[1]
    assert again == pytest.approx(losses[0], rel=1e-4)
