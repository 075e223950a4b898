"""Two later records' ideas on CPU: the key offset of the long-window layers and the backout before the head
(formulas, the unchanged model at initialisation, causality and document isolation with both on)."""

import pytest
import torch

from speedrun.model.gpt import GPT
from speedrun.model.rotary import rotary_frequencies
from tests.test_model import FAST, build, random_tokens, randomize_, small_recipe

NEXT = dict(FAST, key_offset=True, backout_after=2)


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

    mask = next_model.masks(tokens, 2)[0]
    attn.key_offset = False
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        attn(x, None, mask, tokens != 50256)
        raw = keys.pop("k")
        attn.key_offset = True
        attn(x, None, mask, tokens != 50256)
        got = keys.pop("k")
    torch.testing.assert_close(got[..., ~stationary], raw[..., ~stationary])
    want = torch.cat([torch.zeros_like(raw[:, :1]), raw[:, :-1]], dim=1)[..., stationary]
    want[:, 20] = 0
    torch.testing.assert_close(got[..., stationary], want)
    assert want[:, 1:20].abs().max() > 0.1


def test_backout_subtracts_lambda_times_the_early_state(next_model):
    m = next_model
    tokens = random_tokens(256, 4, eot_at=[0, 90])
    outs = {}
    hooks = [m.blocks[1].register_forward_hook(lambda mod, a, out: outs.setdefault("early", out)),
             m.blocks[-1].register_forward_hook(lambda mod, a, out: outs.setdefault("last", out))]
    with torch.no_grad():
        got = m.trunk(tokens, *m.masks(tokens, 8))
    for h in hooks:
        h.remove()
    assert abs(m.backout_lambda.item()) > 0.01
    torch.testing.assert_close(got, outs["last"] - m.backout_lambda * outs["early"])


def test_backout_starts_as_the_model_without_it():
    """lambda starts at 0 and takes no random numbers: at initialisation the logits equal those without backout."""
    tokens = random_tokens(256, 5, eot_at=[0, 70])
    with_it, without = build(small_recipe(**FAST, backout_after=3)), build(small_recipe(**FAST))
    assert with_it.backout_lambda.item() == 0.0 and without.backout_lambda is None
    with torch.no_grad():
        torch.testing.assert_close(with_it(tokens, None, 8), without(tokens, None, 8), atol=0, rtol=0)
    assert any(p is with_it.backout_lambda for p in with_it.param_groups()["scalar"])


@pytest.mark.parametrize("p", [0, 31, 32, 100, 254])
def test_causality_with_key_offset_and_backout(next_model, p):
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


def test_recipe_checks_backout_layer():
    from speedrun.recipe import RecipeError

    with pytest.raises(RecipeError, match="backout_after=6 must lie in 0..num_layers-1"):
        small_recipe(backout_after=6)
    assert isinstance(GPT(small_recipe(backout_after=5)).backout_lambda, torch.nn.Parameter)
