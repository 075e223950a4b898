"""Generation: the KV-cache path gives the full forward pass's logits; sampling from a demo-trained tiny model
produces text, deterministic at temperature 0; `speedrun sample` prints it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import SMALL as SMALL_MODEL

from speedrun.checkpoint import load
from speedrun.cli import main
from speedrun.data.tokenizer import EOT, decode, gpt2
from speedrun.errors import SpeedrunError
from speedrun.evals.sample import final_window, generate, sample_from_checkpoint
from speedrun.model.decoding import KVCache
from speedrun.model.gpt import GPT, CastedLinear
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.train import run

SMALL = dict(SMALL_MODEL, val_seq_len=512)


def random_model(**extra) -> GPT:
    """Every weight random (the zero-initialised projections and the scalars too), so every path carries signal."""
    r = load_recipe("tiny", {**SMALL, **extra})
    torch.manual_seed(0)
    model = GPT(r)
    model.lm_head.fp8_scales = None
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CastedLinear) and m.zero_init:
                m.weight.normal_(0, 0.5 / math.sqrt(m.in_features), generator=g)
        for name, p in model.named_parameters():
            if p.ndim < 2 or name.endswith("gate_w"):
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


FAST = dict(smear=True, attn_gate=True, no_mlp_layers=[0])
# multi-token prediction acts in training only: decoding ignores it
FAST_MTP = dict(FAST, mtp_weights=[0.5, 0.25])
# the key offset needs each layer's last key before the chunk
NEXT = dict(FAST, key_offset=True)


# --- the cached path against the full forward pass ---------------------------------------------------------------
@pytest.mark.parametrize("features", [{}, FAST, FAST_MTP, NEXT], ids=["record21", "fast", "fast+mtp", "fast+key-offset"])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_cached_decoding_matches_the_full_forward(window, features):
    """Two documents in 512 positions (the second starts mid-block), fed in uneven chunks and single tokens:
    every position's logits agree with one full pass (float32, 1e-4), for windows shorter and longer than
    the sequence's blocks; with the fast recipe's smear (which needs the previous token) and gates too."""
    model = random_model(**features)
    T = 512
    x = torch.randint(0, EOT, (T,), generator=torch.Generator().manual_seed(2))
    x[0], x[300] = EOT, EOT
    chunks = [5, 1, 1, 120, 1, 1, 200, 1, 182]
    assert sum(chunks) == T
    with torch.no_grad():
        full = model(x, None, window)[0]
        cache = KVCache()
        parts, i = [], 0
        for n in chunks:
            parts.append(model.forward_cached(x[i: i + n], cache, window))
            i += n
    got = torch.cat(parts)
    assert got.shape == full.shape == (T, 50304)
    assert (got - full).abs().max().item() < 1e-4
    assert cache.length == T and cache.doc == 2
    # the cache keeps only what a later query can see: the window's blocks of the current document
    for k, v, pos, docs in cache.layers.values():
        assert k.shape[2] == v.shape[2] == pos.numel() <= window * 128
        assert bool((docs == 2).all()) and bool((pos >= 300).all())


def test_last_only_and_branching_copies():
    model = random_model()
    x = torch.tensor([EOT] + gpt2().encode_ordinary("The quick brown fox jumps over the lazy dog"))
    with torch.no_grad():
        cache = KVCache()
        last = model.forward_cached(x[:6], cache, 2, last_only=True)
        assert last.shape == (1, 50304)
        branch = cache.copy()
        a = model.forward_cached(x[6:], cache, 2)
        b = model.forward_cached(x[6:], branch, 2)  # the copy is unaffected by what the original went on with
        full = torch.nn.functional.pad(x, (0, 128 - x.numel()))
        ref = model(full, None, 2)[0, : x.numel()]
    assert torch.equal(a, b)
    assert (last[0] - ref[5]).abs().max() < 1e-4 and (a - ref[6:]).abs().max() < 1e-4


def test_non_finite_logits_are_one_error_not_a_traceback():
    model = random_model()
    with torch.no_grad():
        model.lm_head.weight[EOT // 2].fill_(float("nan"))  # a diverged head row: every next-token logit row has a NaN
    with pytest.raises(SpeedrunError, match=r"^the model's next-token logits are not finite \(NaN or inf\) after 0 "):
        generate(model, "The", max_tokens=5)


def test_decoding_past_the_rotary_table():
    """Generation may run past the rotary table (max of seq_len and val_seq_len = 256 here): token by token up
    to position 400, the logits equal a full pass of the same weights with a 512-position table, and the
    cache never holds more than the window."""
    short_table, long_table = random_model(val_seq_len=256), random_model(val_seq_len=512)
    assert short_table.blocks[0].attn.rotary.cos.size(0) == 256
    x = torch.randint(0, EOT, (400,), generator=torch.Generator().manual_seed(4))
    x[0] = EOT
    with torch.no_grad():
        full = long_table(torch.nn.functional.pad(x, (0, 112)), None, 2)[0, :400]
        cache = KVCache()
        parts = [short_table.forward_cached(x[:250], cache, 2)]
        for i in range(250, 400):
            parts.append(short_table.forward_cached(x[i: i + 1], cache, 2))
            assert max(k.shape[2] for k, _, _, _ in cache.layers.values()) <= 2 * 128
    assert (torch.cat(parts) - full).abs().max().item() < 1e-4


# --- a demo-trained tiny model -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    """The tiny recipe, shortened (30 steps at model_dim 64), trained on the bundled demo corpus."""
    tmp = tmp_path_factory.mktemp("demo_sample")
    r = load_recipe("tiny", {**SMALL, "val_seq_len": 256, "window_ramp_tokens": 256, "steps": 30, "val_every": 0,
                             "warmup_steps": 0, "val_tokens": 512, "sample_tokens": 0})
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp / "logs"), say=lambda *a, **k: None,
                 save_every=30, checkpoint_dir=str(tmp))
    assert result.val_losses[-1][1] < 8.0, "the model learned something"
    return Path(result.checkpoint_path), result.model


def test_greedy_sampling_is_deterministic_and_matches_full_recompute(demo_checkpoint):
    path, _ = demo_checkpoint
    a = sample_from_checkpoint(path, "The", max_tokens=24, temperature=0, device="cpu")
    b = sample_from_checkpoint(path, "The", max_tokens=24, temperature=0, seed=123, device="cpu")
    assert a == b and len(a) == 1
    text = a[0]
    assert text.startswith("The") and len(text) > len("The")
    # the same greedy continuation, recomputed with the full forward pass over the whole context each token
    ckpt = load(path)
    model = GPT(ckpt.recipe)
    model.lm_head.fp8_scales = None
    model.load_state_dict(ckpt.model)
    model.eval()
    window = final_window(model)
    tokens = [EOT] + gpt2().encode_ordinary("The")
    with torch.no_grad():
        for _ in range(24):
            x = torch.nn.functional.pad(torch.tensor(tokens), (0, 256 - len(tokens)))
            nxt = int(model(x, None, window)[0, len(tokens) - 1].argmax())
            if nxt == EOT:
                break
            tokens.append(nxt)
    assert text == "The" + decode(tokens[2:])


def test_sampling_produces_text_and_seeds_reproduce(demo_checkpoint):
    path, model = demo_checkpoint
    texts = sample_from_checkpoint(path, "The", max_tokens=30, temperature=0.9, top_k=40, num_samples=2, seed=7,
                                   device="cpu")
    assert len(texts) == 2 and all(t.startswith("The") for t in texts)
    assert texts[0] != texts[1], "different seeds, different samples"
    assert sample_from_checkpoint(path, "The", max_tokens=30, temperature=0.9, top_k=40, seed=8, device="cpu") == texts[1:]
    words = " ".join(t[3:] for t in texts)
    assert sum(c.isalpha() for c in words) >= 10, f"no text: {texts!r}"
    # generate() on the in-memory model (what `speedrun train` prints at the end) gives the same text
    assert generate(model, "The", 30, temperature=0.9, top_k=40, seed=7) == texts[0]


def test_a_tiny_temperature_is_as_greedy_not_a_traceback(demo_checkpoint):
    """1e-40 divided the logits into inf (softmax: nan, then a multinomial traceback); from the maximum it is greedy."""
    path, _ = demo_checkpoint
    greedy = sample_from_checkpoint(path, "The", max_tokens=12, temperature=0, device="cpu")
    for t in (1e-40, 5e-324):
        assert sample_from_checkpoint(path, "The", max_tokens=12, temperature=t, device="cpu") == greedy


@pytest.mark.parametrize("seed, num", [(-1, 1), (2**64, 1), (2**64 - 1, 2), (10**23, 1)])
def test_a_seed_past_torchs_range_is_one_line_before_any_sample(demo_checkpoint, capsys, seed, num):
    path, _ = demo_checkpoint
    rc = main(["sample", str(path), "--tokens", "3", "--seed", str(seed), "--num-samples", str(num), "--device", "cpu"])
    captured = capsys.readouterr()
    last = max(0, 2**64 - num)
    assert rc == 2 and captured.out == "" and captured.err.splitlines()[-1] == (
        f"speedrun: error: --seed {seed} must lie in 0..{last}"
        + (f" with --num-samples {num} (sample i uses seed + i)" if num > 1 else "") + ": torch's seeds")
    assert sample_from_checkpoint(path, "The", max_tokens=3, seed=2**64 - 2, num_samples=2, device="cpu")  # the edge


def test_sample_options_are_checked_before_the_checkpoint_loads(tmp_path, capsys):
    """A bad --seed was refused only after the checkpoint had loaded (the other options are argparse's): here the
    checkpoint is not even there, and the seed is what the one line names."""
    for options in (["--seed", "-1"], ["--seed", str(2**64 - 1), "--num-samples", "2"]):
        rc = main(["sample", str(tmp_path / "nope.pt"), *options, "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith(f"speedrun: error: --seed {options[1]} must lie in 0..") and "\n" not in err


def test_cli_sample(demo_checkpoint, capsys):
    path, _ = demo_checkpoint
    rc = main(["sample", str(path), "--prompt", "It was", "--tokens", "12", "--temperature", "0",
               "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("It was") and "-" * 40 in out
    # nanoGPT's and Hugging Face's name for it gives the same text
    assert main(["sample", str(path), "--prompt", "It was", "--max-new-tokens", "12", "--temperature", "0",
                 "--device", "cpu"]) == 0 and capsys.readouterr().out == out
    # the checkpoint's folder: its newest checkpoint, this one
    assert main(["sample", str(path.parent), "--prompt", "It was", "--tokens", "12", "--temperature", "0",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out == out and f"checkpoint: {path} " in captured.err
    rc = main(["sample", str(path.with_name("nope.pt")), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("speedrun: error: ") and "no such checkpoint file" in err


def test_text_streams_as_it_grows_and_joins_to_the_sample(demo_checkpoint, monkeypatch):
    path, model = demo_checkpoint
    pieces = []
    text = generate(model, "The", 40, temperature=0, on_text=pieces.append)
    assert pieces[0] == "The" and len(pieces) > 5 and "".join(pieces) == text
    ends = []
    texts = sample_from_checkpoint(path, "It", max_tokens=8, num_samples=2, device="cpu", on_text=lambda s: None,
                                   on_end=lambda: ends.append(1))
    assert len(texts) == 2 and ends == [1, 1]
    # tokens whose bytes end inside a character (ï, €, 日本 are split in GPT-2's BPE): a piece waits for the rest
    want = gpt2().encode_ordinary(" naïve € 日本")
    assert any(not _utf8(gpt2().decode_single_token_bytes(t)) for t in want), "the test needs a split character"
    chosen = iter(want + [EOT])
    monkeypatch.setattr("speedrun.evals.sample.pick", lambda *a: next(chosen))
    pieces = []
    assert generate(model, "It", 40, on_text=pieces.append) == "It naïve € 日本" == "".join(pieces)
    assert all("\ufffd" not in piece for piece in pieces)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
