"""record21.toml holds every number of the record-21 recipe, checked against the spec's text (shared/spec, beside the
repository; skipped without it)."""

import re

import pytest

from speedrun.recipe import Recipe, load_recipe

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


@pytest.fixture(scope="module")
def r21() -> Recipe:
    return load_recipe("record21")


@pytest.fixture(scope="module")
def spec(spec_text) -> str:
    """The spec with whitespace collapsed and typographic minus signs made ASCII."""
    return re.sub(r"\s+", " ", spec_text.replace("\u2212", "-"))


def find(spec: str, pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, spec)
    assert m, f"spec text no longer matches /{pattern}/"
    return m.groups()


def num(s: str) -> float:
    return float(s.replace(",", ""))


# ---------------------------------------------------------------------------------------------------------
# record21 against the spec text

def test_spec_data(r21, spec):
    (vocab,) = find(spec, r"vocabulary (\d+), `<\|endoftext\|>` = (?:\d+)")
    assert r21.vocab_size == int(vocab) == 50257
    (val_tokens,) = find(spec, r"first ([\d,]+) tokens of the FineWeb validation set")
    assert r21.val_tokens == num(val_tokens) == 10_485_760
    assert r21.train_loop is False  # the record reads its 7-8 train shards once


def test_spec_model_dims(r21, spec):
    (layers,) = find(spec, r"## Model \(GPT, (\d+) layers\)")
    dim, heads, head_dim, mlp, emb_rows, emb_cols, padded, multiple = map(int, find(
        spec, r"dim (\d+); (\d+) heads of head_dim (\d+); MLP hidden (\d+); token embedding (\d+)×(\d+); "
              r"the head's output is padded to (\d+) \(a multiple of (\d+)\)"))
    assert r21.num_layers == int(layers) == 12
    assert r21.model_dim == dim == emb_cols == 768
    assert r21.num_heads == heads == 6
    assert r21.head_dim == head_dim == 128
    assert r21.mlp_hidden == mlp == 3072
    assert r21.vocab_size == emb_rows
    assert r21.vocab_multiple == multiple == 128
    assert r21.padded_vocab == padded == 50304
    assert r21.num_heads * r21.head_dim == r21.model_dim


def test_spec_value_embeddings(r21, spec):
    (count,) = find(spec, r"(\w+) extra \"value embedding\" tables")
    assert r21.value_embeds == WORDS[count.lower()] == 3
    first, first_tables, last, last_tables, none_from, none_to = find(
        spec, r"Layers ([\d,]+) use tables ([\d,]+); layers ([\d,]+) use tables ([\d,]+) again; "
              r"layers (\d+)-(\d+) use none")
    expected = {}
    for layers, tables in ((first, first_tables), (last, last_tables)):
        for layer, table in zip(layers.split(","), tables.split(",")):
            expected[int(layer)] = int(table)
    for layer in range(int(none_from), int(none_to) + 1):
        expected[layer] = None
    assert sorted(expected) == list(range(12))
    assert expected == {0: 0, 1: 1, 2: 2, **{i: None for i in range(3, 9)}, 9: 0, 10: 1, 11: 2}
    assert {layer: r21.value_embed_layer(layer) for layer in range(12)} == expected


def test_spec_attention(r21, spec):
    (no_attn,) = find(spec, r"\(layer (\d+) has no attention\)")
    assert r21.no_attn_layers == [int(no_attn)] == [7]
    (pattern,) = find(spec, r"Per-layer pattern \[([LS, ]+)\]")
    assert r21.window_pattern == pattern.replace(",", "").replace(" ", "") == "LSSSLSSLSSSL"
    (scale,) = find(spec, r"Attention logits scale ([\d.]+)")
    assert r21.attn_scale == float(scale) == 0.12
    base, n_freq = find(spec, r"`\(1/(\d+)\) \*\* linspace\(0, 1, (\d+)\)`")
    assert r21.rotary_base == float(base) == 1024.0
    assert r21.head_dim // 4 == int(n_freq) == 32


def test_spec_softcap_and_fp8(r21, spec):
    cap, div = find(spec, r"`(\d+) · sigmoid\(logits / ([\d.]+)\)`")
    assert (r21.logit_cap, r21.logit_cap_div) == (float(cap), float(div)) == (30.0, 7.5)
    x, w, g = map(int, find(spec, r"input scaled by (\d+) → e4m3, weight scaled by 2\^(\d+) → e4m3, "
                                  r"output-gradient scaled by 2\^(\d+) → e5m2"))
    assert r21.fp8_head is True
    assert r21.fp8_x_scale == x == 2
    assert r21.fp8_w_scale == 2.0 ** w == 2.0 ** 9
    assert r21.fp8_grad_scale == 2.0 ** g == 2.0 ** 19


def test_spec_windows(r21, spec):
    (block,) = find(spec, r"at block granularity \(blocks of (\d+) tokens\)")
    b1, ramp, b2, at_least, final = map(int, find(
        spec, r"`(\d+) × ceil\(\((\d+) · s / N\) / (\d+)\)` tokens, at least (\d+), growing to (\d+) tokens"))
    assert r21.attn_block_size == int(block) == b1 == b2 == at_least == 128
    assert r21.window_ramp_tokens == ramp == 1728
    assert -(-r21.window_ramp_tokens // r21.attn_block_size) * r21.attn_block_size == final == 1792


def test_spec_sequence_and_batch(r21, spec):
    t1, t2, train, v1, v2, v3, val = find(
        spec, r"training (\d+)×(\d+) = ([\d,]+) tokens per GPU per step; validation (\d+)×(\d+)×(\d+) = ([\d,]+)")
    assert r21.seq_len == num(train) == int(t1) * int(t2) == 49152
    assert r21.val_seq_len == num(val) == int(v1) * int(v2) * int(v3) == 262144
    steps, gpus, per_gpu, per_step = find(spec, r"(\d+) steps \((\d+) × ([\d,]+) = ([\d,]+) tokens a step")
    assert r21.steps == int(steps) == 1770
    assert r21.batch_tokens == num(per_step) == int(gpus) * num(per_gpu) == 8 * 49152
    assert [r21.grad_accum_steps(ws) for ws in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert r21.val_batches(8) == 5 and r21.val_batches(1) == 40


def test_spec_adam(r21, spec):
    b1, b2, eps, head, embed, scalar = find(
        spec, r"Adam \(β = \(([\d.]+), ([\d.]+)\), ε = ([\d.e-]+), no weight decay\): head lr ([\d.]+); "
              r"embeddings \(token \+ value\) lr ([\d.]+); scalars \([^)]*\) lr ([\d.]+)\.")
    assert r21.adam_betas == [float(b1), float(b2)] == [0.8, 0.95]
    assert r21.adam_eps == float(eps) == 1e-10
    assert r21.lr_head == float(head) == 0.008
    assert r21.lr_embed == float(embed) == 0.6
    assert r21.lr_scalar == float(scalar) == 0.04


def test_spec_muon(r21, spec):
    lr, m0, m1, warm = find(spec, r"lr ([\d.]+), Nesterov, momentum warmed linearly from ([\d.]+) to ([\d.]+) "
                                  r"over the first (\d+) steps")
    assert r21.muon_lr == float(lr) == 0.05
    assert r21.muon_momentum_start == float(m0) == 0.85
    assert r21.muon_momentum == float(m1) == 0.95
    assert r21.muon_momentum_warmup_steps == int(warm) == 300
    n, a, b, c = find(spec, r"with (\d+) quintic Newton-Schulz steps .{0,40}coefficients \(a, b, c\) = "
                            r"\(([-\d.]+), ([-\d.]+), ([-\d.]+)\)")
    assert r21.ns_steps == int(n) == 5
    assert r21.ns_coefficients == [float(a), float(b), float(c)] == [3.4445, -4.7750, 2.0315]


def test_spec_schedule_and_loop(r21, spec):
    flat_pct, min_frac, cooldown = find(
        spec, r"1\.0 for the first (\d+)% of steps, then linear to ([\d.]+) at the end \(cooldown fraction ([\d.]+)\)")
    assert r21.cooldown_frac == float(cooldown) == 0.4
    assert abs(1 - r21.cooldown_frac - int(flat_pct) / 100) < 1e-12
    assert r21.min_lr_frac == float(min_frac) == 0.1
    (every,) = find(spec, r"at each validation \(every (\d+) steps and at the end\)")
    assert r21.val_every == int(every) == 125
    (warm,) = find(spec, r"an untimed kernel warm-up runs some steps \(the record: (\d+)\)")
    assert r21.warmup_steps == int(warm) == 10


def test_record21_other_fields(r21):
    assert r21.name == "record21"
    assert "record 21" in r21.description.lower()
    assert r21.gpu_only is True
    assert (r21.device, r21.compile) == ("auto", "auto")
    assert r21.train_files.endswith(".bin") and "fineweb_train_" in r21.train_files
    assert "fineweb_val_" in r21.val_files
