"""GPU check of `tied_head` as the trainer builds it: the table stays one bf16 parameter through the move to the GPU,
and under torch.compile with the fused FP8 head + loss its gradient is an untied twin's embedding gradient plus its
head gradient; a few optimiser steps keep the tie."""

import dataclasses

import pytest
import torch
from test_gpu import SMALL_MODEL, random_docs, rel_err

from speedrun.build import build_model, build_optimizers
from speedrun.model.fp8 import fp8_supported
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and fp8_supported()),
                                reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")


def test_compiled_tied_head_gradient_is_embedding_plus_head():
    r = load_recipe("fast", [*SMALL_MODEL, "tied_head=true"])
    tied = build_model(r, make_plan(r))
    twin_r = dataclasses.replace(r, tied_head=False)
    twin = build_model(twin_r, make_plan(twin_r))
    assert tied.lm_head.weight is tied.embed.weight and tied.embed.weight.dtype == torch.bfloat16
    with torch.no_grad():
        torch.nn.init.normal_(tied.embed.weight, std=0.1)
        state = {k: v for k, v in tied.state_dict().items() if k not in ("embed.weight", "lm_head.weight")}
        twin.load_state_dict(state, strict=False)
        twin.embed.weight.copy_(tied.embed.weight[: r.vocab_size])
        twin.lm_head.weight.copy_(tied.embed.weight)
    tokens = random_docs(r.seq_len + 1, 600, seed=5)
    inputs, targets = tokens[:-1].int(), tokens[1:].long()
    window = torch.tensor(7, device="cuda")
    losses = []
    for m in (tied, twin):
        assert m.fused_head_loss_active()
        loss = torch.compile(m, dynamic=False)(inputs, targets, window)
        loss.backward()
        losses.append(loss.item())
    want = twin.lm_head.weight.grad.float()
    want[: r.vocab_size] += twin.embed.weight.grad.float()
    err = rel_err(tied.embed.weight.grad, want)
    print(f"\ntied head, compiled: loss {losses[0]:.5f} vs untied twin {losses[1]:.5f}; table grad error {err:.4f}")
    assert abs(losses[0] - losses[1]) < 1e-3 * losses[1]
    assert err < 0.02

    adam, muon = build_optimizers(tied, r)
    runner = torch.compile(tied, dynamic=False)
    for _ in range(3):
        for opt in (adam, muon):
            opt.step()
        tied.zero_grad(set_to_none=True)
        loss = runner(inputs, targets, window)
        loss.backward()
    assert tied.lm_head.weight is tied.embed.weight and torch.isfinite(loss)
