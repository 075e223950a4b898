"""The attention's value lambdas (v = a*v + b*ve): every gradient of the module must be that of the formula written on
the data (test_model.py checks the forward), however the module applies them (upstream record 47 scales the weight's v
slice instead: measured in experiments part 62-63, and removed for its launch time)."""

import pytest
import torch
import torch.nn.functional as F
from test_model import build, random_tokens, randomize_, small_recipe

from speedrun.model.attention import DenseWindow, reference_mask
from speedrun.model.gpt import norm


def by_hand(attn, h, ve, window):
    """The attention as the spec writes it: the lambda `a` multiplies v itself."""
    T, H, hd = h.size(1), attn.num_heads, attn.head_dim
    q, k, v = (F.linear(h, attn.qkv_w[i]).view(1, T, H, hd) for i in range(3))
    q, k = attn.rotary(norm(q)), attn.rotary(norm(k))
    v = attn.lambdas[0] * v + (0 if ve is None else attn.lambdas[1] * ve.view(1, T, H, hd))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-1, -2)) * attn.scale
    y = scores.masked_fill(~window.mask, float("-inf")).softmax(-1) @ v
    return F.linear(y.transpose(1, 2).reshape(1, T, H * hd), attn.c_proj.weight)


@pytest.mark.parametrize("with_ve", [True, False])
def test_value_lambdas_gradients_match_the_formula_on_the_data(with_ve):
    attn = randomize_(build(small_recipe(attn_block_size=32))).blocks[0].attn
    T = 128
    g = torch.Generator().manual_seed(5)
    h, ve, dy = (torch.randn(1, T, 64, generator=g) for _ in range(3))
    window = DenseWindow(reference_mask(random_tokens(T, 6, eot_at=[0, 70]), 2, 32))
    ve = ve if with_ve else None
    grads = []
    for forward in (attn, lambda x, ve, window: by_hand(attn, x, ve, window)):
        attn.zero_grad()
        x = h.clone().requires_grad_()
        (forward(x, ve, window) * dy).sum().backward()
        grads.append({"x": x.grad, **{n: p.grad.clone() for n, p in attn.named_parameters() if p.grad is not None}})
    module, reference = grads
    assert set(module) == set(reference) and {"lambdas", "qkv_w"} <= set(module)
    for name in reference:
        torch.testing.assert_close(module[name], reference[name], atol=1e-5, rtol=1e-4, msg=name)
    if not with_ve:
        assert reference["lambdas"][1] == 0  # b has no path without a value embedding
