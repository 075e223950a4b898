"""Schedules as pure functions of the step, against the record-21 spec (1770 steps)."""

from __future__ import annotations

import pytest

from speedrun.optim.schedule import (
    long_window_blocks,
    lr_multiplier,
    mtp_decay,
    mtp_weights_at,
    muon_momentum,
)
from speedrun.recipe import load_recipe

N = 1770


def spec_lr(step, steps=N, cooldown=0.4, min_frac=0.1):
    x = step / steps
    if x < 1 - cooldown:
        return 1.0
    w = (1 - x) / cooldown
    return w + (1 - w) * min_frac


def lr(step):
    return lr_multiplier(step, N, 0.4, 0.1)


@pytest.mark.parametrize("step", [0, 1, 500, 1000, 1061])
def test_lr_flat_for_the_first_60_percent(step):
    assert step < 0.6 * N
    assert lr(step) == 1.0


@pytest.mark.parametrize("step", [1062, 1100, 1500, 1769, 1770])
def test_lr_linear_cooldown(step):
    assert lr(step) == pytest.approx(spec_lr(step), abs=1e-12)


def test_lr_cooldown_values():
    assert lr(1062) == pytest.approx(1.0, abs=1e-9)
    assert lr(1500) == pytest.approx((1 - 1500 / N) / 0.4 * 0.9 + 0.1, abs=1e-12)
    assert lr(1500) == pytest.approx(0.4432, abs=1e-4)
    assert lr(1769) == pytest.approx(0.1 + 0.9 * (1 / N) / 0.4, abs=1e-12)
    assert 0.1 < lr(1769) < 0.102
    assert lr(N) == pytest.approx(0.1, abs=1e-12)


def test_lr_monotone_non_increasing_and_bounded():
    values = [lr(s) for s in range(N + 1)]
    assert all(a >= b - 1e-15 for a, b in zip(values, values[1:]))
    assert all(0.1 - 1e-12 <= v <= 1.0 for v in values)
    assert all(v == 1.0 for v in values[:1062])  # steps 0..1061
    assert values[1063] < 1.0  # 1062 is x = 0.6 exactly (w = 1); after that it falls


def test_lr_other_parameters():
    assert lr_multiplier(50, 100, 0.5, 0.0) == pytest.approx(1.0)
    assert lr_multiplier(75, 100, 0.5, 0.0) == pytest.approx(0.5)
    assert lr_multiplier(100, 100, 0.5, 0.0) == pytest.approx(0.0)
    assert lr_multiplier(99, 100, 0.0, 0.1) == 1.0  # no cooldown
    assert lr_multiplier(0, 100, 1.0, 0.2) == pytest.approx(1.0)
    assert lr_multiplier(50, 100, 1.0, 0.2) == pytest.approx(0.6)


@pytest.mark.parametrize("step,want", [(0, 0.85), (30, 0.86), (150, 0.90), (299, 0.95 - 0.1 / 300),
                                       (300, 0.95), (301, 0.95), (1770, 0.95)])
def test_muon_momentum_warmup(step, want):
    assert muon_momentum(step, 0.85, 0.95, 300) == pytest.approx(want, abs=1e-12)


def test_muon_momentum_no_warmup():
    assert muon_momentum(0, 0.85, 0.95, 0) == 0.95


def exact_blocks(step, steps=N, ramp=1728, block=128):
    """128 * ceil((1728 * s / N) / 128) tokens, at least one block, in exact integer arithmetic."""
    return max(1, -(-ramp * step // (steps * block)))


def test_long_window_endpoints():
    assert long_window_blocks(0, N, 1728, 128) == 1  # 128 tokens
    assert long_window_blocks(N, N, 1728, 128) == 14  # 1792 tokens
    assert 128 * long_window_blocks(N, N, 1728, 128) == 1792


def test_long_window_matches_formula_for_every_step_and_is_monotone():
    values = [long_window_blocks(s, N, 1728, 128) for s in range(N + 1)]
    assert values == [exact_blocks(s) for s in range(N + 1)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert sorted(set(values)) == list(range(1, 15))
    assert values[1] == 1 and values[131] == 1 and values[132] == 2  # 1728*131/1770 < 128 < 1728*132/1770


def test_long_window_exact_block_multiple_boundary():
    # 1728 * 1180 / 1770 = 1152 = 9 * 128 exactly: ceil must not round up to 10
    assert long_window_blocks(1180, N, 1728, 128) == 9
    assert long_window_blocks(1181, N, 1728, 128) == 10


def test_schedules_agree_with_record21_recipe():
    r = load_recipe("record21")
    assert (r.steps, r.cooldown_frac, r.min_lr_frac) == (N, 0.4, 0.1)
    assert (r.muon_momentum_start, r.muon_momentum, r.muon_momentum_warmup_steps) == (0.85, 0.95, 300)
    assert (r.window_ramp_tokens, r.attn_block_size) == (1728, 128)
    assert long_window_blocks(r.steps, r.steps, r.window_ramp_tokens, r.attn_block_size) * 128 <= r.seq_len


@pytest.mark.parametrize("step,want", [(0, [0.5, 0.25]), (100, [0.4, 0.2]), (250, [0.25, 0.125]), (499, [0.001, 0.0005]),
                                       (500, [0.0, 0.0]), (501, [0.0, 0.0]), (1000, [0.0, 0.0])])
def test_mtp_weights_fall_linearly_to_zero_at_end_frac(step, want):
    got = mtp_weights_at(step, 1000, [0.5, 0.25], 0.5)
    assert got == pytest.approx(want, abs=1e-12)
    assert all(w >= 0 for w in got)


def test_mtp_weights_other_cases():
    assert mtp_weights_at(7, 100, [], 0.5) == []
    assert mtp_weights_at(1770, 1770, [1.0], 1.0) == [0.0]  # end_frac 1: zero only at the very end
    assert mtp_weights_at(885, 1770, [1.0], 1.0) == pytest.approx([0.5])
    values = [mtp_decay(s, 1770, 0.3) for s in range(1771)]
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:]))
    assert values[531] == 0.0 and values[530] > 0  # 0.3 * 1770 = 531
