"""The record-21 GPT on CPU: initial loss, logits, causality, document isolation, windows, wiring, init, groups,
(rotary and norm: test_rotary.py)."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import BlockLists, DenseWindow, dense_mask, reference_mask
from speedrun.model.gpt import GATE_SUFFIX, GPT, CastedLinear, init_uniform_, norm
from speedrun.recipe import load_recipe

PADDED_VOCAB = 50304


def small_recipe(**extra):
    return load_recipe("tiny", {**SMALL, **extra})


def build(r, seed=0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(r)
    model.lm_head.fp8_scales = None
    return model


def randomize_(model: GPT, seed: int = 1) -> GPT:
    """Give the zero-initialised projections and the scalars random values, so every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CastedLinear) and m.zero_init:
                bound = 3**0.5 * 0.5 / math.sqrt(m.in_features)
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound)
        for name, p in model.named_parameters():
            if p.ndim < 2 or name.endswith(GATE_SUFFIX):
                p.copy_(p + 0.3 * torch.randn(p.shape, generator=g))
    return model


def random_tokens(T, seed, eot_at=()):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, EOT, (T,), generator=g)
    for p in eot_at:
        t[p] = EOT
    return t


@pytest.fixture(scope="module")
def small_model():
    """Small randomised model with 32-token attention blocks (8 blocks per 256-token row)."""
    return randomize_(build(small_recipe(attn_block_size=32))).eval()


FAST = dict(smear=True, attn_gate=True, no_mlp_layers=[0])  # the fast recipe's architecture changes


@pytest.fixture(scope="module")
def fast_model():
    """small_model with smear, the attention gate and no first MLP, every gate and scalar randomised."""
    return randomize_(build(small_recipe(attn_block_size=32, **FAST))).eval()


@pytest.fixture(scope="module")
def record21_meta():
    with torch.device("meta"):
        return GPT(load_recipe("record21"))


# --- initial loss and logits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tiny", "small"])
def test_initial_loss_is_log_padded_vocab(which):
    r = load_recipe("tiny") if which == "tiny" else small_recipe()
    assert r.padded_vocab == PADDED_VOCAB
    model = build(r)
    x, y = random_tokens(r.seq_len, 1, eot_at=[0, 100]), random_tokens(r.seq_len, 2)
    with torch.no_grad():
        for w in (1, r.seq_len // r.attn_block_size):
            loss = model(x, y, w)
            assert loss.ndim == 0 and loss.dtype == torch.float32
            assert abs(loss.item() - math.log(PADDED_VOCAB)) < 1e-4
        logits = model(x, None, 1)
    assert logits.shape == (1, r.seq_len, PADDED_VOCAB)
    assert torch.all(logits == 15.0)  # zero head: 30 * sigmoid(0)


def test_logits_shape_and_soft_cap_range(small_model):
    T = 256
    with torch.no_grad():
        logits = small_model(random_tokens(T, 3, eot_at=[0, 77]), None, 8)
    assert logits.shape == (1, T, PADDED_VOCAB) and logits.dtype == torch.float32
    assert torch.all(logits > 0) and torch.all(logits < 30)
    assert logits.std() > 0.1  # the randomised head really produces varied logits


def test_loss_equals_cross_entropy_of_the_returned_logits(small_model):
    x, y = random_tokens(256, 4, eot_at=[0]), random_tokens(256, 5)
    with torch.no_grad():
        logits = small_model(x, None, 4)
        loss = small_model(x, y, 4)
    torch.testing.assert_close(loss, F.cross_entropy(logits[0], y), rtol=1e-6, atol=1e-6)


def test_soft_cap_formula():
    """30 * sigmoid(raw / 7.5) == 15 * (tanh(raw / 15) + 1)."""
    r = small_recipe()
    model = build(r)
    raw_w = torch.randn(PADDED_VOCAB, r.model_dim) * 0.5
    with torch.no_grad():
        model.lm_head.weight.copy_(raw_w)
    x = random_tokens(256, 6, eot_at=[0])
    captured = {}
    h = model.lm_head.register_forward_hook(lambda m, a, out: captured.setdefault("raw", out.detach()))
    with torch.no_grad():
        logits = model(x, None, 2)
    h.remove()
    raw = captured["raw"].float()
    torch.testing.assert_close(logits, 15 * (torch.tanh(raw / 15) + 1), rtol=1e-5, atol=1e-5)
    assert raw.abs().max() > 20  # exercises the cap's non-linear range


def test_rejects_batched_inputs_and_unknown_backend():
    r = small_recipe()
    with pytest.raises(ValueError, match="back-end"):
        GPT(r, attention="sdpa")
    with pytest.raises(ValueError, match="1-D"):
        build(r)(torch.zeros(2, 256, dtype=torch.long), None, 1)


# --- causality, documents, windows -----------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [8, 2])
@pytest.mark.parametrize("p", [0, 31, 32, 100, 254])
@pytest.mark.parametrize("which", ["small_model", "fast_model"])
def test_causality_future_tokens_do_not_change_past_logits(which, p, window, request):
    small_model = request.getfixturevalue(which)
    T = 256
    a = random_tokens(T, 10, eot_at=[0, 150])
    b = a.clone()
    b[p + 1:] = random_tokens(T - p - 1, 11, eot_at=[e for e in (0, 3, 40) if e < T - p - 1])  # new tokens, new document boundaries too
    with torch.no_grad():
        la, lb = small_model(a, None, window), small_model(b, None, window)
    torch.testing.assert_close(la[0, : p + 1], lb[0, : p + 1], atol=1e-5, rtol=0)
    assert (la[0, p + 1:] - lb[0, p + 1:]).abs().max() > 1e-3  # the later positions do react


@pytest.mark.parametrize("e", [100, 128])  # inside a block / exactly at a block start
@pytest.mark.parametrize("which", ["small_model", "fast_model"])
def test_document_isolation(which, e, request):
    """Tokens of an earlier document do not affect a later one, even when the window covers both (with smear too:
    it never mixes across a document start)."""
    small_model = request.getfixturevalue(which)
    T = 256
    a = random_tokens(T, 20, eot_at=[0, e, 200])
    b = a.clone()
    b[1:e] = random_tokens(e - 1, 21)  # rewrite the earlier document (no EOT in it)
    with torch.no_grad():
        la, lb = small_model(a, None, 8), small_model(b, None, 8)
    torch.testing.assert_close(la[0, e:], lb[0, e:], atol=1e-5, rtol=0)
    assert (la[0, 1:e] - lb[0, 1:e]).abs().max() > 1e-3


def test_window_of_one_block_isolates_blocks(small_model):
    """With long = short = 1 block, a position only sees its own block, so blocks never mix."""
    a = random_tokens(256, 30)  # one document
    b = a.clone()
    b[:32] = random_tokens(32, 31)
    with torch.no_grad():
        la, lb = small_model(a, None, 1), small_model(b, None, 1)
    torch.testing.assert_close(la[0, 32:], lb[0, 32:], atol=1e-5, rtol=0)
    assert (la[0, :32] - lb[0, :32]).abs().max() > 1e-3


def test_window_limits_the_receptive_field(small_model):
    """long = 2 blocks (short = 1): only the 3 long layers (LSSLSL, layer 4 has no attention) reach one block
    back each, so a change in block 0 reaches blocks 1..3 and never blocks 4..7; with the full window it does."""
    a = random_tokens(256, 40)
    b = a.clone()
    b[:32] = random_tokens(32, 41)
    with torch.no_grad():
        la, lb = small_model(a, None, 2), small_model(b, None, 2)
        fa, fb = small_model(a, None, 8), small_model(b, None, 8)
    torch.testing.assert_close(la[0, 128:], lb[0, 128:], atol=1e-5, rtol=0)
    assert (la[0, 32:64] - lb[0, 32:64]).abs().max() > 1e-4
    assert (la[0, 96:128] - lb[0, 96:128]).abs().max() > 1e-5  # three blocks away: still reached
    assert (fa[0, 128:] - fb[0, 128:]).abs().max() > 1e-4


def test_windows_long_and_short():
    r = small_recipe(attn_block_size=32)
    model = build(r)
    x = random_tokens(256, 50, eot_at=[0, 90, 91, 160])
    for long_blocks in range(1, 9):
        long_w, short_w = model.windows(x, long_blocks)
        assert isinstance(long_w, DenseWindow) and isinstance(short_w, DenseWindow)  # the CPU back-end
        assert torch.equal(long_w.mask, reference_mask(x, long_blocks, 32))
        assert torch.equal(short_w.mask, reference_mask(x, max(1, long_blocks // 2), 32))
    lists = BlockLists.build(x, 32)
    assert torch.equal(model.windows(x, 5)[0].mask, dense_mask(lists, 5))


# --- wiring: x0, value embeddings, U-net skips -------------------------------------------------------------------------
def test_block_inputs_follow_the_unet_and_value_embedding_wiring(small_model):
    model = small_model
    n_layers = len(model.blocks)
    n = n_layers // 2
    with torch.no_grad():
        model.skip_weights.copy_(torch.tensor([0.7, -1.3, 2.1]))
    calls = {}
    hooks = [b.register_forward_hook(lambda m, args, out, i=i: calls.__setitem__(i, (args, out)))
             for i, b in enumerate(model.blocks)]
    x = random_tokens(256, 60, eot_at=[0, 120])
    try:
        with torch.no_grad():
            model(x, None, 8)
    finally:
        for h in hooks:
            h.remove()
    assert sorted(calls) == list(range(n_layers))
    x0 = norm(model.embed(x)[None])
    for i in range(n_layers):
        (xin, ve, x0_in, window, _), out = calls[i]
        torch.testing.assert_close(x0_in, x0)
        t = model.ve_table[i]
        if t is None:
            assert ve is None
        else:
            torch.testing.assert_close(ve, model.value_embeds[t](x)[None])
        want_in = x0 if i == 0 else calls[i - 1][1]
        if i >= n:
            j = i - n
            want_in = want_in + model.skip_weights[j] * calls[n - 1 - j][1]  # layer n+j gets layer n-1-j's output
        torch.testing.assert_close(xin, want_in, atol=1e-6, rtol=1e-6)
        # long/short window per layer pattern
        w = 8 if model.long_layer[i] else 4
        assert torch.equal(window.mask, reference_mask(x, w, 32))
    assert model.ve_table == [0, 1, None, None, 0, 1]


def test_block_and_attention_follow_the_spec_formulas(small_model):
    """Block: x = l0*x + l1*x0; x += attn(norm(x)); x += mlp(norm(x)). Attention: merged QKV, QK-norm, rotary,
    v = a*v + b*ve, scale 0.12, document-causal windowed mask, output projection. MLP: relu(x)^2."""
    model = small_model
    block = model.blocks[0]
    attn = block.attn
    T, D, H, hd = 256, 64, 2, 32
    g = torch.Generator().manual_seed(70)
    x, x0, ve = (torch.randn(1, T, D, generator=g) for _ in range(3))
    tokens = random_tokens(T, 71, eot_at=[0, 50, 180])
    window = DenseWindow(reference_mask(tokens, 3, 32))
    with torch.no_grad():
        # attention by hand
        h = norm(block.lambdas[0] * x + block.lambdas[1] * x0)
        q, k, v = (F.linear(h, attn.qkv_w[i]).view(1, T, H, hd) for i in range(3))
        q, k = attn.rotary(norm(q)), attn.rotary(norm(k))
        v = attn.lambdas[0] * v + attn.lambdas[1] * ve.view(1, T, H, hd)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) * 0.12
        y = scores.masked_fill(~window.mask, float("-inf")).softmax(-1) @ v
        a_out = F.linear(y.transpose(1, 2).reshape(1, T, H * hd), attn.c_proj.weight)
        torch.testing.assert_close(attn(h, ve, window), a_out, atol=1e-5, rtol=1e-5)
        # without a value embedding: v = a*v
        v_plain = attn.lambdas[0] * F.linear(h, attn.qkv_w[2]).view(1, T, H, hd).transpose(1, 2)
        y2 = scores.masked_fill(~window.mask, float("-inf")).softmax(-1) @ v_plain
        torch.testing.assert_close(attn(h, None, window),
                                   F.linear(y2.transpose(1, 2).reshape(1, T, H * hd), attn.c_proj.weight),
                                   atol=1e-5, rtol=1e-5)
        # the block
        xb = block.lambdas[0] * x + block.lambdas[1] * x0
        xb = xb + a_out
        mlp = F.linear(F.relu(F.linear(norm(xb), block.mlp.c_fc.weight)).square(), block.mlp.c_proj.weight)
        torch.testing.assert_close(block(x, ve, x0, window), xb + mlp, atol=1e-5, rtol=1e-5)
        # the attention-free layer: only the MLP
        b4 = model.blocks[4]
        xb4 = b4.lambdas[0] * x + b4.lambdas[1] * x0
        mlp4 = F.linear(F.relu(F.linear(norm(xb4), b4.mlp.c_fc.weight)).square(), b4.mlp.c_proj.weight)
        torch.testing.assert_close(b4(x, None, x0, window), xb4 + mlp4, atol=1e-5, rtol=1e-5)
    assert attn.scale == 0.12


def test_forward_composes_embed_blocks_and_head(small_model):
    """logits = 30 * sigmoid(head(norm(x_L)) / 7.5), with x_0 = norm(embed(tokens))."""
    model = small_model
    tokens = random_tokens(256, 80, eot_at=[0, 99])
    outs = {}
    h = model.blocks[-1].register_forward_hook(lambda m, a, out: outs.setdefault("last", out))
    with torch.no_grad():
        logits = model(tokens, None, 8)
    h.remove()
    want = 30 * torch.sigmoid(F.linear(norm(outs["last"]), model.lm_head.weight) / 7.5)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)


def test_layer_without_attention_is_attention_free():
    r = small_recipe()
    model = build(r)
    assert r.no_attn_layers == [4]
    assert model.blocks[4].attn is None
    assert all(b.attn is not None for i, b in enumerate(model.blocks) if i != 4)


# --- record 21 structure (meta device) ---------------------------------------------------------------------------------
def test_record21_structure_on_meta(record21_meta):
    m = record21_meta
    assert m.ve_table == [0, 1, 2] + [None] * 6 + [0, 1, 2]
    assert m.blocks[7].attn is None
    assert [b.attn is None for b in m.blocks].count(True) == 1
    assert m.skip_weights.shape == (6,)
    assert len(m.value_embeds) == 3 and all(t.weight.shape == (50257, 768) for t in m.value_embeds)
    assert m.embed.weight.shape == (50257, 768)
    assert m.lm_head.weight.shape == (PADDED_VOCAB, 768)
    assert m.blocks[0].attn.qkv_w.shape == (3, 768, 768)
    assert m.blocks[0].attn.c_proj.weight.shape == (768, 768)
    assert m.blocks[0].mlp.c_fc.weight.shape == (3072, 768)
    assert m.blocks[0].mlp.c_proj.weight.shape == (768, 3072)
    assert m.long_layer == [c == "L" for c in "LSSSLSSLSSSL"]
    assert m.lm_head.fp8_scales == (2.0, 512.0, 524288.0)
    assert m.blocks[0].attn.scale == 0.12


def test_record21_parameter_count(record21_meta):
    assert sum(p.numel() for p in record21_meta.parameters()) == 275_598_388


# --- parameter groups -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "record21", "fast"])
def test_param_groups_partition_parameters(which, record21_meta):
    model = {"small": lambda: build(small_recipe()), "record21": lambda: record21_meta,
             "fast": lambda: build(small_recipe(**FAST))}[which]()
    groups = model.param_groups()
    assert set(groups) == {"muon", "embed", "head", "scalar"}
    seen = [id(p) for ps in groups.values() for p in ps]
    assert len(seen) == len(set(seen)), "a parameter is in two groups (or twice in one)"
    assert set(seen) == {id(p) for p in model.parameters()}, "a parameter is in no group"
    ids = lambda ps: {id(p) for p in ps}
    L = len(model.blocks)
    n_attn = sum(b.attn is not None for b in model.blocks)
    want_muon = []
    n_mlp = sum(b.mlp is not None for b in model.blocks)
    for b in model.blocks:
        if b.attn is not None:
            want_muon += [b.attn.qkv_w, b.attn.c_proj.weight]
        if b.mlp is not None:
            want_muon += [b.mlp.c_fc.weight, b.mlp.c_proj.weight]
    assert ids(groups["muon"]) == ids(want_muon)
    assert len(groups["muon"]) == 2 * n_attn + 2 * n_mlp and n_mlp == L - len(model.recipe.no_mlp_layers)
    assert all(p.ndim >= 2 for p in groups["muon"])
    r = model.recipe
    assert sum(p.shape == (3, r.num_heads * r.head_dim, r.model_dim) for p in groups["muon"]) == n_attn
    assert ids(groups["embed"]) == ids([model.embed.weight, *(t.weight for t in model.value_embeds)])
    assert ids(groups["head"]) == {id(model.lm_head.weight)}
    want_scalar = [model.skip_weights] + [b.lambdas for b in model.blocks] + [b.attn.lambdas for b in model.blocks if b.attn]
    if which == "fast":  # gates go to Adam with the scalars
        want_scalar += [model.smear_gate_w, model.smear_lambda] + [b.attn.gate_w for b in model.blocks if b.attn]
    assert ids(groups["scalar"]) == ids(want_scalar)


# --- initialisation -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def record21_real():
    """record 21 materialised on CPU (short rows keep the rotary tables small); ~1.1 GB."""
    torch.manual_seed(0)
    return GPT(load_recipe("record21", dict(seq_len=2048, val_seq_len=2048)))


@pytest.mark.parametrize("which", ["tiny", "record21"])
def test_initialisation(which, request):
    model = build(load_recipe("tiny")) if which == "tiny" else request.getfixturevalue("record21_real")
    assert torch.equal(model.skip_weights.detach(), torch.ones(len(model.blocks) // 2))
    for b in model.blocks:
        assert b.lambdas.tolist() == [1.0, 0.0]
        assert torch.all(b.mlp.c_proj.weight == 0)
        if b.attn is not None:
            assert b.attn.lambdas.tolist() == [0.5, 0.5]
            assert torch.all(b.attn.c_proj.weight == 0)
    assert torch.all(model.lm_head.weight == 0)
    uniform = []
    for b in model.blocks:
        if b.attn is not None:
            uniform.append(b.attn.qkv_w)
        uniform.append(b.mlp.c_fc.weight)
    for w in uniform:
        fan_in = w.shape[-1]
        std = 0.5 / math.sqrt(fan_in)
        w = w.detach()
        assert w.abs().max() <= math.sqrt(3) * std * (1 + 1e-6)
        assert w.abs().max() > 0.95 * math.sqrt(3) * std  # really uniform over the whole range
        assert abs(w.std().item() / std - 1) < 0.03
        assert abs(w.mean().item()) < 0.02 * std


def test_init_uniform_bounds_and_std():
    torch.manual_seed(0)
    w = init_uniform_(torch.empty(400, 300), 300)
    bound = math.sqrt(3) * 0.5 / math.sqrt(300)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.std().item() - 0.5 / math.sqrt(300)) < 0.01 * 0.5 / math.sqrt(300)


def test_casted_linear_casts_weight_to_activation_dtype():
    lin = CastedLinear(8, 4)
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    y = lin(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, F.linear(x, lin.weight.to(torch.bfloat16)))


# --- later records' architecture changes -------------------------------------------------------------------------------
def test_smear_formula_and_document_starts(fast_model):
    """x[t] + lambda * sigmoid(w . x[t][:gate_dims]) * x[t-1], except position 0 and document starts (EOT)."""
    m = fast_model
    tokens = random_tokens(40, 50, eot_at=[0, 17])
    x = m.embed(tokens).detach()
    with torch.no_grad():
        got = m.smear_embeddings(x, tokens)
    g = m.recipe.gate_dims
    gate = m.smear_lambda * torch.sigmoid(x[1:, :g] @ m.smear_gate_w.T)
    want = torch.cat([x[:1], x[1:] + gate * x[:-1]])
    want[17] = x[17]
    torch.testing.assert_close(got, want)
    assert (got[1:17] - x[1:17]).abs().max() > 1e-3  # it does mix elsewhere
    # zero lambda (the initial value) makes it the identity
    fresh = build(small_recipe(**FAST))
    assert fresh.smear_lambda.item() == 0.0
    torch.testing.assert_close(fresh.smear_embeddings(x, tokens), x)


def test_attention_gate_scales_each_head_by_a_sigmoid():
    """With a zero gate matrix (its initial value) every head is halved: the output is half the ungated one
    (c_proj is linear). With gates saturated, head 0 off and head 1 fully on, the output is the ungated layer's
    with head 0's values zeroed."""
    r_gate, r_plain = small_recipe(attn_gate=True, attn_block_size=32), small_recipe(attn_block_size=32)
    plain = randomize_(build(r_plain))
    gated = build(r_gate)
    gated.load_state_dict({**plain.state_dict(), **{k: v for k, v in gated.state_dict().items() if "gate_w" in k}})
    attn_g, attn_p = gated.blocks[0].attn, plain.blocks[0].attn
    x = norm(torch.randn(1, 64, r_gate.model_dim))
    x[..., 0] = x[..., 0].abs() + 0.1  # a positive first input dim, so the saturated gates below are exactly 0 / 1
    window = DenseWindow(dense_mask(BlockLists.build(random_tokens(64, 3, eot_at=[0]), r_gate.attn_block_size), 2))
    with torch.no_grad():
        torch.testing.assert_close(attn_g(x, None, window), 0.5 * attn_p(x, None, window))
        attn_g.gate_w.zero_()
        attn_g.gate_w[0, 0], attn_g.gate_w[1, 0] = -1e4, 1e4
        y_g = attn_g(x, None, window)
        attn_p.qkv_w[2, : r_plain.head_dim] = 0  # head 0's values
        torch.testing.assert_close(y_g, attn_p(x, None, window))


def test_layers_without_mlp():
    model = build(small_recipe(no_mlp_layers=[0, 2], attn_block_size=8))
    assert [b.mlp is None for b in model.blocks] == [True, False, True, False, False, False]
    x = torch.randn(1, 8, model.recipe.model_dim)
    b = model.blocks[0]
    with torch.no_grad():
        b.lambdas.copy_(torch.tensor([1.0, 0.0]))
        b.attn.c_proj.weight.zero_()
        window = DenseWindow(dense_mask(BlockLists.build(random_tokens(8, 4, eot_at=[0]), 8), 1))
        torch.testing.assert_close(b(x, None, x, window), x)  # no attention output, no MLP: the identity


def test_fused_head_loss_is_inactive_without_the_fp8_head():
    """Where the FP8 head is off (CPU, eval, no gradients) the fused head + loss recipe computes the plain loss."""
    r = small_recipe(attn_block_size=32, fp8_head=True, fused_head_loss=True)
    model = randomize_(build(r)).train()  # build() clears fp8_scales, as the trainer does on a CPU
    x, y = random_tokens(256, 4, eot_at=[0]), random_tokens(256, 5)
    assert not model.fused_head_loss_active()
    loss = model(x, y, 4)
    with torch.no_grad():
        torch.testing.assert_close(loss, F.cross_entropy(model(x, None, 4)[0], y))
    model.lm_head.fp8_scales = (2.0, 512.0, 524288.0)
    assert model.fused_head_loss_active()
    with torch.no_grad():
        assert not model.fused_head_loss_active()  # validation and sampling stay unfused
    assert not model.eval().fused_head_loss_active()



def test_flex_window_tensors_are_made_once_per_window():
    """The flex back-end's window tensor for each distinct window is reused: a fresh one per step would be a
    host-to-device copy that waits for the GPU every step."""
    r = small_recipe(attn_block_size=32)
    model = GPT(r, attention="flex")
    tensors = [model.window(s) for s in range(r.steps + 1)]
    dense = GPT(r, attention="dense")
    assert [int(t) for t in tensors] == [dense.window(s) for s in range(r.steps + 1)]
    assert all(t.dtype == torch.int32 for t in tensors)
    by_value = {}
    for t in tensors:
        assert by_value.setdefault(int(t), t) is t  # one object per value
    assert len(by_value) > 1  # the window does grow over the run
