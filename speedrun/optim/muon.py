"""Muon: momentum SGD whose update is orthogonalised by a quintic Newton-Schulz iteration.

Single rank: every parameter is orthogonalised locally. Several ranks: parameters are grouped by size; rank r
orthogonalises every world_size-th parameter of a group (the r-th of each run of world_size), and the updates
are all-gathered asynchronously, each gather overlapped with the next parameter's Newton-Schulz work.
Gradients must already be averaged across ranks when `step` runs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G: Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, dtype=torch.bfloat16) -> Tensor:
    """Approximately orthogonalise G (..., rows, cols) slice by slice: singular values pushed into ~[0.7, 1.2].

    Works on the wide orientation (transposes when rows > cols), after normalising each slice by its Frobenius
    norm, repeating A = X X^T; B = b A + c A A; X = a X + B X.
    """
    if G.ndim < 2:
        raise ValueError("newton_schulz needs a matrix (or a batch of matrices)")
    a, b, c = coefficients
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if tall:
        X = X.mT
    return X


def shape_scale(p: Tensor) -> float:
    """Muon's lr multiplier for a (rows, cols) matrix: max(1, rows/cols) ** 0.5."""
    return max(1.0, p.size(-2) / p.size(-1)) ** 0.5


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.05, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 ns_coefficients=NS_COEFFICIENTS, ns_dtype: torch.dtype = torch.bfloat16):
        params = list(params)
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        ns_coefficients=tuple(ns_coefficients))
        # Group by size so that a group's updates can be all-gathered into one flat buffer.
        groups = [dict(params=[p for p in params if p.numel() == n]) for n in sorted({p.numel() for p in params},
                                                                                      reverse=True)]
        super().__init__(groups, defaults)
        self.ns_dtype = ns_dtype  # bf16 as in the record; float32 on CPUs, where bf16 matmuls are slow
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0
        self._gather: dict[int, Tensor] = {}

    def _update(self, p: Tensor, group: dict) -> Tensor:
        """Nesterov momentum, then Newton-Schulz: the orthogonalised update of one parameter, flattened."""
        g = p.grad
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(g)
        buf = state["momentum_buffer"]
        buf.lerp_(g, 1 - group["momentum"])
        g = g.lerp_(buf, group["momentum"]) if group["nesterov"] else buf
        return newton_schulz(g, group["ns_steps"], group["ns_coefficients"], self.ns_dtype).flatten()

    @staticmethod
    def _apply(p: Tensor, update: Tensor, lr: float) -> None:
        p.add_(update.view_as(p).to(p.dtype), alpha=-lr * shape_scale(p))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params, lr = group["params"], group["lr"]
            if self.world_size == 1:
                for p in params:
                    self._apply(p, self._update(p, group), lr)
                continue
            ws = self.world_size
            numel = params[0].numel()
            if numel not in self._gather:  # kept off the param group so optimiser state_dicts stay plain
                self._gather[numel] = torch.empty(ws, numel, dtype=torch.bfloat16, device=params[0].device)
            buf = self._gather[numel]
            pending = None  # (handle, params of the previous round)
            for base in range(0, len(params), ws):
                mine = base + self.rank
                if mine < len(params):
                    u = self._update(params[mine], group).to(torch.bfloat16)
                else:
                    u = buf[self.rank]  # a placeholder: nobody reads this slot
                if pending is not None:
                    self._finish(*pending, buf, lr)
                handle = dist.all_gather_into_tensor(buf, u, async_op=True)
                pending = (handle, params[base: base + ws])
            if pending is not None:
                self._finish(*pending, buf, lr)

    def _finish(self, handle, round_params, buf, lr):
        handle.wait()
        for p, u in zip(round_params, buf):
            self._apply(p, u, lr)
