"""The model's two parameter-free pieces: half-truncated rotary (the record's frequencies, the formula, what it must
preserve) and RMSNorm without weight."""


import pytest
import torch

from speedrun.model.gpt import norm
from speedrun.model.rotary import Rotary, rotary_frequencies


def test_rotary_frequencies_record21():
    f = rotary_frequencies(128, 1024.0)
    assert f.shape == (64,) and f.dtype == torch.float32
    want = (1 / 1024) ** torch.linspace(0, 1, 32, dtype=torch.float64)
    torch.testing.assert_close(f[:32].double(), want, rtol=1e-6, atol=0)
    assert f[0] == 1.0 and abs(f[31].item() - 1 / 1024) < 1e-9
    assert torch.all(f[32:] == 0)


def _rotary_input(T=40, H=3, D=128, seed=0):
    return torch.randn(2, T, H, D, generator=torch.Generator().manual_seed(seed))


def test_rotary_matches_the_formula():
    D, T = 128, 40
    rot = Rotary(D, 64, 1024.0)
    x = _rotary_input(T)
    y = rot(x)
    theta = torch.arange(T, dtype=torch.float64)[:, None] * rotary_frequencies(D, 1024.0).double()[None]
    cos, sin = theta.cos()[None, :, None], theta.sin()[None, :, None]
    x1, x2 = x.double()[..., :64], x.double()[..., 64:]
    want = torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], -1)
    torch.testing.assert_close(y.double(), want, atol=2e-5, rtol=1e-5)


def test_rotary_zero_frequency_dims_unchanged_position0_identity_norms_preserved():
    D = 128
    rot = Rotary(D, 64, 1024.0)
    x = _rotary_input()
    y = rot(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    # second quarter of each half: zero frequency, not rotated
    assert torch.equal(y[..., 32:64], x[..., 32:64])
    assert torch.equal(y[..., 96:128], x[..., 96:128])
    # position 0: identity
    torch.testing.assert_close(y[:, 0], x[:, 0], atol=0, rtol=0)
    # rotated pairs (i, i + 64): norm preserved; and they do rotate at positions > 0
    nx = x[..., :64] ** 2 + x[..., 64:] ** 2
    ny = y[..., :64] ** 2 + y[..., 64:] ** 2
    torch.testing.assert_close(ny, nx, atol=1e-5, rtol=1e-5)
    assert (y[:, 1:, :, :32] - x[:, 1:, :, :32]).abs().max() > 0.1


def test_rotary_scores_depend_only_on_relative_position():
    D = 64
    rot = Rotary(D, 128, 1024.0)
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(D, generator=g), torch.randn(D, generator=g)
    rows = lambda v: rot(v.expand(1, 128, 1, D).contiguous())[0, :, 0]
    rq, rk = rows(q), rows(k)
    for m, n, shift in [(10, 3, 50), (70, 70, 20), (5, 40, 60)]:
        torch.testing.assert_close(rq[m] @ rk[n], rq[m + shift] @ rk[n + shift], atol=1e-4, rtol=1e-4)


def test_rotary_bf16_input_round_trips_dtype_and_rejects_long_sequences():
    rot = Rotary(32, 16, 1024.0)
    x = torch.randn(1, 16, 2, 32, dtype=torch.bfloat16)
    assert rot(x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="longer than the rotary table"):
        rot(torch.randn(1, 17, 2, 32))


# --- norm ------------------------------------------------------------------------------------------------------------
def test_norm_is_rms_norm_without_weight():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 64, generator=g) * 3 + 1
    eps = torch.finfo(torch.float32).eps
    want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    torch.testing.assert_close(norm(x), want, atol=1e-6, rtol=1e-6)
    assert torch.allclose(norm(x).pow(2).mean(-1), torch.ones(3, 5), atol=1e-5)
    assert torch.equal(norm(torch.zeros(4, 8)), torch.zeros(4, 8))


def test_one_rotary_table_for_all_layers():
    """Every attention layer uses the model's one table (each its own would be 2 x 67 MB at record21's lengths),
    and the table is no part of the state dict."""
    from speedrun.model.gpt import GPT
    from speedrun.recipe import load_recipe

    with torch.device("meta"):
        model = GPT(load_recipe("record21"))
    tables = {id(b.attn.rotary) for b in model.blocks if b.attn is not None}
    assert len(tables) == 1
    assert not [k for k in model.state_dict() if "rotary" in k]
