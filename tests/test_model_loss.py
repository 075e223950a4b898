"""The model's loss without gradients (validation): the head and cross-entropy over slices of positions, so that a
long val row never holds all its logits at once, and the same mean as the whole row's cross-entropy."""

import pytest
import torch
import torch.nn.functional as F
from test_model import build, random_tokens, randomize_, small_recipe

import speedrun.model.gpt as gpt


@pytest.fixture(scope="module")
def model():
    return randomize_(build(small_recipe(attn_block_size=32))).eval()


def count_head_calls(monkeypatch, model) -> list[int]:
    sizes = []
    head = model.head
    monkeypatch.setattr(model, "head", lambda x, *rest: sizes.append(x.shape[-2]) or head(x, *rest))
    return sizes


@pytest.mark.parametrize("slice_tokens, want_slices", [(100, [100, 100, 56]), (64, [64] * 4), (16384, [256])])
def test_loss_without_gradients_runs_in_slices_with_the_whole_rows_mean(model, monkeypatch, slice_tokens, want_slices):
    x, y = random_tokens(256, 4, eot_at=[0, 97]), random_tokens(256, 5)
    with torch.no_grad():
        logits = model(x, None, 4)[0]
    monkeypatch.setattr(gpt, "LOSS_SLICE_TOKENS", slice_tokens)
    sizes = count_head_calls(monkeypatch, model)
    with torch.no_grad():
        loss = model(x, y, 4)
    assert sizes == want_slices
    torch.testing.assert_close(loss, F.cross_entropy(logits, y), rtol=1e-6, atol=1e-6)


def test_loss_with_gradients_is_not_sliced(model, monkeypatch):
    """Training keeps one head call over the row (slicing would save no memory there: each slice's logits are kept
    for the backward pass) and its loss is the plain cross-entropy of the returned logits."""
    monkeypatch.setattr(gpt, "LOSS_SLICE_TOKENS", 64)
    x, y = random_tokens(256, 6, eot_at=[0]), random_tokens(256, 7)
    sizes = count_head_calls(monkeypatch, model)
    loss = model(x, y, 4)
    assert sizes == [256] and loss.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(loss.detach(), F.cross_entropy(model(x, None, 4)[0], y), rtol=1e-6, atol=1e-6)
