"""Endgame weight averaging: an fp32 exponential moving average of some parameter groups over the last part of a
run, blended into the weights once, after the last step (upstream's TailEMA and ANVIL records: the final weights
sit between the last iterate and a smoothed one, which scores lower than either at a short run's end)."""

from __future__ import annotations

import torch


class TailAverage:
    """Average of `params` from `start_step` on; `update(done)` after each optimiser step, `blend()` once at the end.

    The average starts as a copy of the weights after step `start_step` and then follows avg += (1 - decay) *
    (w - avg) after every later step; `blend()` sets w = (1 - blend) * w + blend * avg. Its state (the average)
    goes into full checkpoints like an optimiser's, so a resumed run ends with the same weights as a straight one.
    """

    def __init__(self, params: list[torch.nn.Parameter], start_step: int, decay: float, blend: float):
        if not params:
            raise ValueError("TailAverage needs at least one parameter")
        self.params, self.start_step, self.decay, self.blend_weight = list(params), start_step, decay, blend
        self.avg: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, done: int) -> None:
        """`done`: the steps taken so far (the weights are those after step `done`)."""
        if done < self.start_step:
            return
        weights = [p.detach().float() for p in self.params]  # fp32 params: no copy
        if self.avg is None:
            self.avg = [w.clone() for w in weights]
        else:
            torch._foreach_lerp_(self.avg, weights, 1.0 - self.decay)

    @torch.no_grad()
    def blend(self) -> None:
        if self.avg is None:
            raise RuntimeError(f"TailAverage.blend before any update at or after step {self.start_step}")
        for p, a in zip(self.params, self.avg):
            p.copy_(p.float().lerp_(a, self.blend_weight))

    def state_dict(self) -> dict:
        return {"avg": None if self.avg is None else [a.clone() for a in self.avg]}

    def load_state_dict(self, state: dict) -> None:
        avg = state["avg"]
        if avg is not None:
            if len(avg) != len(self.params) or any(a.shape != p.shape for a, p in zip(avg, self.params)):
                raise ValueError("tail average state does not match the parameters")
            avg = [a.to(device=p.device, dtype=torch.float32) for a, p in zip(avg, self.params)]
        self.avg = avg


def tail_average_for(model, r) -> TailAverage | None:
    """The recipe's tail average over its parameter groups (`tail_average_groups`), or None when off."""
    if not r.tail_average_groups:
        return None
    groups = model.param_groups()
    params = [p for name in r.tail_average_groups for p in groups[name]]
    start = max(1, round(r.tail_average_start_frac * r.steps))
    return TailAverage(params, start, r.tail_average_decay, r.tail_average_blend)
