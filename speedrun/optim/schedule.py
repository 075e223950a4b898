"""Schedules of a run, as pure functions of the step: lr multiplier, Muon momentum, attention window, MTP weights."""

import math


def lr_multiplier(step: int, steps: int, cooldown_frac: float, min_frac: float) -> float:
    x = step / steps
    if x < 1 - cooldown_frac:
        return 1.0
    w = (1 - x) / cooldown_frac
    return w * 1.0 + (1 - w) * min_frac


def muon_momentum(step: int, start: float, end: float, warmup_steps: int) -> float:
    frac = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return (1 - frac) * start + frac * end


def long_window_blocks(step: int, steps: int, ramp_tokens: int, block_size: int) -> int:
    return max(1, math.ceil(ramp_tokens * step / steps / block_size))


def mtp_decay(step: int, steps: int, end_frac: float) -> float:
    """MTP weights' multiplier: linear from 1 at step 0 to 0 at end_frac of the steps, then 0 (next token only)."""
    return max(0.0, 1.0 - step / (steps * end_frac))


def mtp_weights_at(step: int, steps: int, weights: list[float], end_frac: float) -> list[float]:
    decay = mtp_decay(step, steps, end_frac)
    return [w * decay for w in weights]
