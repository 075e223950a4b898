"""Paired-head attention (`Recipe.paired_head_layers`): in those layers each pair of heads (2j, 2j+1) attends as one
head over 2T rows, row 2t + p holding head p of the pair at position t, under the mask rule applied to rows (causal
over rows, each row in its position's document, the window in blocks of rows). Checked against a slow reference
built by hand; no new parameters; the layers before the first paired one, and recipes without any, are untouched.
Causality and document isolation: the `paired_model` cases of tests/test_model.py; KV-cache decoding:
tests/test_sample.py; the FlexAttention and dense masks of the 2T sequence: tests/test_attention.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_attention import paired_reference_mask
from test_model import FAST, PAIRED, build, random_tokens, randomize_, small_recipe

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import deinterleave_heads, interleave_heads, reference_mask
from speedrun.model.gpt import GPT, norm
from speedrun.recipe import load_recipe


@pytest.fixture(scope="module")
def paired_model():
    """The fast architecture with 4 heads of 16 (two pairs), every weight random, paired heads in layers 1 and 3."""
    return randomize_(build(small_recipe(attn_block_size=32, num_heads=4, head_dim=16, **PAIRED))).eval()


def test_interleave_layout_and_round_trip():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, 4, generator=g)  # (B, T, H, D)
    y = interleave_heads(x)
    assert y.shape == (2, 10, 3, 4)
    for t in range(5):
        for p in range(2):
            for j in range(3):
                assert torch.equal(y[:, 2 * t + p, j], x[:, t, 2 * j + p])
    assert torch.equal(deinterleave_heads(y), x)
    # attention hands its output back as (B, H/2, 2T, D) transposed: not contiguous
    yt = y.transpose(1, 2).contiguous().transpose(1, 2)
    assert not yt.is_contiguous() and torch.equal(deinterleave_heads(yt), x)


def _document_ids_by_hand(tokens: torch.Tensor) -> list[int]:
    docs, d = [], 0
    for tok in tokens.tolist():
        d += tok == EOT
        docs.append(d)
    return docs


@pytest.mark.parametrize("layer", [1, 3], ids=["short-window layer", "long-window layer"])
def test_paired_layer_equals_a_slow_reference(paired_model, layer):
    """Per pair of heads: the 2T rows built one by one, dense attention under a mask built pair by pair of rows,
    the output rows put back by hand; then the attention gate and the projection."""
    m = paired_model
    attn = m.blocks[layer].attn
    assert attn.paired and m.recipe.num_heads == 4
    r = m.recipe
    T, H, hd, bs, long_blocks = 128, r.num_heads, r.head_dim, r.attn_block_size, 4
    w = long_blocks if m.long_layer[layer] else long_blocks // 2  # in blocks of rows
    tokens = random_tokens(T, 90, eot_at=[0, 37, 64, 65, 100])  # 64: a one-token document
    masks = m.masks(tokens, long_blocks)
    g = torch.Generator().manual_seed(91)
    x = norm(torch.randn(1, T, r.model_dim, generator=g))
    ve = torch.randn(1, T, H * hd, generator=g) if m.ve_table[layer] is not None else None
    docs = _document_ids_by_hand(tokens)
    with torch.no_grad():
        got = attn(x, ve, masks[m.mask_index[layer]])
        q, k, v = (F.linear(x, attn.qkv_w[i]).view(1, T, H, hd) for i in range(3))
        q, k = attn.rotary(norm(q))[0], attn.rotary(norm(k))[0]  # rotary at each token's own position
        v = attn.lambdas[0] * v[0] + (attn.lambdas[1] * ve.view(T, H, hd) if ve is not None else 0)
        y = torch.empty(T, H, hd)
        for j in range(H // 2):
            rows = [(t, p) for t in range(T) for p in range(2)]
            rq, rk, rv = (torch.stack([z[t, 2 * j + p] for t, p in rows]) for z in (q, k, v))
            allowed = torch.zeros(2 * T, 2 * T, dtype=torch.bool)
            for a in range(2 * T):
                for b in range(a + 1):
                    allowed[a, b] = docs[a // 2] == docs[b // 2] and a // bs - b // bs < w
            out = ((rq @ rk.T) * attn.scale).masked_fill(~allowed, float("-inf")).softmax(-1) @ rv
            for i, (t, p) in enumerate(rows):
                y[t, 2 * j + p] = out[i]
        y = y * torch.sigmoid(x[0, :, : r.gate_dims] @ attn.gate_w.T)[..., None]
        want = F.linear(y.reshape(1, T, H * hd), attn.c_proj.weight)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # not vacuous: the same weights unpaired, with the plain mask, give something else
        attn.paired = False
        try:
            plain = attn(x, ve, masks[m.mask_index[layer] - 2])
        finally:
            attn.paired = True
    assert (plain - got).abs().max() > 1e-3


def test_model_masks_for_paired_layers():
    """Two more masks, of the 2T rows, with the layers' usual windows in blocks; only those some paired layer uses."""
    tokens = random_tokens(256, 5, eot_at=[0, 90, 91, 160])
    both = build(small_recipe(attn_block_size=32, **PAIRED))
    for long_blocks in (1, 3, 8):
        short = max(1, long_blocks // 2)
        masks = both.masks(tokens, long_blocks)
        assert len(masks) == 4
        assert torch.equal(masks[0], reference_mask(tokens, long_blocks, 32))
        assert torch.equal(masks[1], reference_mask(tokens, short, 32))
        assert torch.equal(masks[2], paired_reference_mask(tokens, long_blocks, 32))
        assert torch.equal(masks[3], paired_reference_mask(tokens, short, 32))
    assert both.mask_index == [0, 3, 1, 2, 1, 0]  # LSSLSL; 1 and 3 paired
    short_only = build(small_recipe(attn_block_size=32, paired_head_layers=[1, 2]))
    masks = short_only.masks(tokens, 4)
    assert masks[2] is None and torch.equal(masks[3], paired_reference_mask(tokens, 2, 32))
    assert len(build(small_recipe(attn_block_size=32)).masks(tokens, 4)) == 2  # no paired layers: as before


def test_paired_heads_add_no_parameters():
    plain, paired = build(small_recipe(**FAST)), build(small_recipe(**PAIRED))
    a, b = plain.state_dict(), paired.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seed, same initial weights
    assert sum(p.numel() for p in paired.parameters()) == sum(p.numel() for p in plain.parameters())
    assert [len(g) for g in paired.param_groups().values()] == [len(g) for g in plain.param_groups().values()]
    with torch.device("meta"):
        record = GPT(load_recipe("record21", ["paired_head_layers=[1, 2, 5, 9]"]))
    assert sum(p.numel() for p in record.parameters()) == 275_598_388  # record 21's count
    assert [b.attn.paired for b in record.blocks if b.attn is not None].count(True) == 4


def test_layers_before_the_first_paired_one_are_unchanged():
    """Same weights with and without paired heads in layer 3: blocks 0..2 give bit-identical outputs, layer 3 and the
    logits differ. Without paired layers no attention is paired (the forward pass is the one from before the field)."""
    plain = randomize_(build(small_recipe(attn_block_size=32, **FAST))).eval()
    paired = randomize_(build(small_recipe(attn_block_size=32, **FAST, paired_head_layers=[3]))).eval()
    assert not any(b.attn.paired for b in plain.blocks if b.attn is not None)
    outs = {}
    for name, m in (("plain", plain), ("paired", paired)):
        for i, b in enumerate(m.blocks):
            b.register_forward_hook(lambda mod, args, out, key=(name, i): outs.__setitem__(key, out))
    tokens = random_tokens(256, 6, eot_at=[0, 120])
    with torch.no_grad():
        la, lb = plain(tokens, None, 4), paired(tokens, None, 4)
    for i in range(3):
        assert torch.equal(outs["plain", i], outs["paired", i]), i
    assert (outs["plain", 3] - outs["paired", 3]).abs().max() > 1e-3
    assert (la - lb).abs().max() > 1e-3
