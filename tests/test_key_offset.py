"""The key offset of the long-window layers on CPU: which layers, the formula, causality and document isolation
(KV-cache decoding with it: test_sample.py)."""

import pytest
import torch
from test_model import FAST, build, random_tokens, randomize_, small_recipe

from speedrun.model.rotary import rotary_frequencies

NEXT = dict(FAST, key_offset=True)


@pytest.fixture(scope="module")
def next_model():
    return randomize_(build(small_recipe(attn_block_size=32, **NEXT))).eval()


def test_key_offset_only_on_long_window_layers():
    model = build(small_recipe(**NEXT))
    pattern = model.recipe.window_pattern
    for i, block in enumerate(model.blocks):
        if block.attn is not None:
            assert block.attn.key_offset == (pattern[i] == "L")
            assert (block.attn.stationary is not None) == (pattern[i] == "L")
    assert any(b.attn is not None and b.attn.key_offset for b in model.blocks)


def test_key_offset_shifts_the_position_free_dims_within_documents(next_model):
    """The attention's keys: in the zero-frequency dims, position t holds the key position t-1 had (before the
    shift), zero at position 0 and where a document starts; the rotated dims are untouched."""
    attn = next(b.attn for b in next_model.blocks if b.attn is not None and b.attn.key_offset)
    D = attn.head_dim
    stationary = rotary_frequencies(D, next_model.recipe.rotary_base).repeat(2) == 0
    assert stationary.sum() == D // 2 and torch.equal(attn.stationary, stationary)
    tokens = random_tokens(64, 3, eot_at=[0, 20])
    x = torch.randn(1, 64, next_model.recipe.model_dim)
    keys = {}
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        keys.setdefault("k", k.transpose(1, 2))
        return real(q, k, v, **kw)

    window = next_model.windows(tokens, 2)[0]
    attn.key_offset = False
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        attn(x, None, window, tokens != 50256)
        raw = keys.pop("k")
        attn.key_offset = True
        attn(x, None, window, tokens != 50256)
        got = keys.pop("k")
    torch.testing.assert_close(got[..., ~stationary], raw[..., ~stationary])
    want = torch.cat([torch.zeros_like(raw[:, :1]), raw[:, :-1]], dim=1)[..., stationary]
    want[:, 20] = 0
    torch.testing.assert_close(got[..., stationary], want)
    assert want[:, 1:20].abs().max() > 0.1


@pytest.mark.parametrize("p", [0, 31, 32, 100, 254])
def test_causality_with_key_offset(next_model, p):
    a = random_tokens(256, 10, eot_at=[0, 150])
    b = a.clone()
    b[p + 1:] = random_tokens(256 - p - 1, 11, eot_at=[e for e in (0, 3, 40) if e < 256 - p - 1])
    with torch.no_grad():
        la, lb = next_model(a, None, 8), next_model(b, None, 8)
    torch.testing.assert_close(la[0, : p + 1], lb[0, : p + 1], atol=1e-5, rtol=0)
    assert (la[0, p + 1:] - lb[0, p + 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("e", [100, 128])
def test_document_isolation_with_key_offset(next_model, e):
    """The shifted key never carries the previous document's last token into the next document."""
    a = random_tokens(256, 20, eot_at=[0, e, 200])
    b = a.clone()
    b[1:e] = random_tokens(e - 1, 21)
    with torch.no_grad():
        la, lb = next_model(a, None, 8), next_model(b, None, 8)
    torch.testing.assert_close(la[0, e:], lb[0, e:], atol=1e-5, rtol=0)
