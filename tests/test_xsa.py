"""Exclusive self-attention (recipe field `xsa`) on CPU: the projection, where it sits in the layer, causality and
document isolation, and its learned share in Adam's scalar group (KV-cache decoding with it: test_sample.py)."""

import pytest
import torch
from test_model import FAST, build, random_tokens, randomize_, small_recipe

from speedrun.model.gpt import exclude_self_value

XSA = dict(FAST, xsa=True)


def test_full_share_leaves_nothing_along_the_own_value():
    y, v = torch.randn(2, 3, 10, 16), torch.randn(2, 3, 10, 16)
    z = exclude_self_value(y, v, torch.ones(3))
    assert (z * v).sum(-1).abs().max() < 1e-5
    # what is left is y's part orthogonal to v: y = z + (its share along v)
    along = (y * v).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True)
    torch.testing.assert_close(z + along * v, y)


def test_share_per_head_zero_share_and_zero_value():
    y, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    alpha = torch.tensor([0.0, 0.5])
    z = exclude_self_value(y, v, alpha)
    torch.testing.assert_close(z[:, 0], y[:, 0])  # alpha 0: the head's output unchanged
    full = exclude_self_value(y, v, torch.ones(2))
    torch.testing.assert_close(z[:, 1], (y[:, 1] + full[:, 1]) / 2)  # alpha 1/2: halfway
    v[0, 1, 2] = 0  # a zero value vector has no direction to remove: no NaN, y unchanged there
    z = exclude_self_value(y, v, torch.ones(2))
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z[0, 1, 2], y[0, 1, 2])


def test_bf16_in_bf16_out():
    y, v = torch.randn(1, 2, 4, 8, dtype=torch.bfloat16), torch.randn(1, 2, 4, 8, dtype=torch.bfloat16)
    assert exclude_self_value(y, v, torch.ones(2)).dtype == torch.bfloat16


@pytest.fixture(scope="module")
def xsa_model():
    return randomize_(build(small_recipe(attn_block_size=32, **XSA))).eval()


def test_layer_applies_it_to_the_attention_output_before_the_projection(xsa_model):
    """The layer equals the layer without XSA whose attention output goes through exclude_self_value."""
    attn = next(b.attn for b in xsa_model.blocks if b.attn is not None)
    tokens = random_tokens(64, 3, eot_at=[0, 20])
    x = torch.randn(1, 64, xsa_model.recipe.model_dim)
    mask = xsa_model.masks(tokens, 2)[0]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    alpha = attn.xsa_alpha
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        got = attn(x, None, mask, tokens != 50256)
        attn.xsa_alpha = None
        try:
            plain = attn(x, None, mask, tokens != 50256)
            mp.setattr(torch.nn.functional, "scaled_dot_product_attention",
                       lambda q, k, v, **kw: exclude_self_value(sdpa(q, k, v, **kw), v, alpha))
            want = attn(x, None, mask, tokens != 50256)
        finally:
            attn.xsa_alpha = alpha
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert (got - plain).abs().max() > 1e-3  # and it changes the layer


def test_every_attention_layer_has_a_share_per_head_in_the_scalar_group():
    model = build(small_recipe(**XSA))
    shares = [b.attn.xsa_alpha for b in model.blocks if b.attn is not None]
    assert shares and all(a.shape == (model.recipe.num_heads,) and bool((a == 1).all()) for a in shares)
    scalar_ids = {id(p) for p in model.param_groups()["scalar"]}
    assert all(id(a) in scalar_ids for a in shares)
    assert all(b.attn.xsa_alpha is None for b in build(small_recipe(**FAST)).blocks if b.attn is not None)


def test_the_share_learns():
    model = randomize_(build(small_recipe(**XSA))).train()
    tokens = random_tokens(257, 5, eot_at=[0, 100])
    model(tokens[:-1], tokens[1:], 2).backward()
    grads = [b.attn.xsa_alpha.grad for b in model.blocks if b.attn is not None]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert max(g.abs().max().item() for g in grads) > 0


@pytest.mark.parametrize("p", [0, 31, 32, 100, 254])
def test_causality_with_xsa(xsa_model, p):
    a = random_tokens(256, 10, eot_at=[0, 150])
    b = a.clone()
    b[p + 1:] = random_tokens(256 - p - 1, 11, eot_at=[e for e in (0, 3, 40) if e < 256 - p - 1])
    with torch.no_grad():
        la, lb = xsa_model(a, None, 8), xsa_model(b, None, 8)
    torch.testing.assert_close(la[0, : p + 1], lb[0, : p + 1], atol=1e-5, rtol=0)
    assert (la[0, p + 1:] - lb[0, p + 1:]).abs().max() > 1e-3


def test_document_isolation_with_xsa(xsa_model):
    a = random_tokens(256, 20, eot_at=[0, 100, 200])
    b = a.clone()
    b[1:100] = random_tokens(99, 21)
    with torch.no_grad():
        la, lb = xsa_model(a, None, 8), xsa_model(b, None, 8)
    torch.testing.assert_close(la[0, 100:], lb[0, 100:], atol=1e-5, rtol=0)
