"""Muon: momentum SGD whose update is orthogonalised by a quintic Newton-Schulz iteration.

Matrices of one shape are orthogonalised together as a batch; with several ranks the batch is shared out and
the results all-gathered (see `Muon`). Gradients must already be averaged across ranks when `step` runs.
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


# torch >= 2.13 renames all_gather_into_tensor (deprecated there) to all_gather_single.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def wide_matrices(t: Tensor) -> Tensor:
    """View a parameter-shaped tensor as a batch (k, rows, cols) of matrices in wide orientation (rows <= cols)."""
    m = t.reshape(-1, *t.shape[-2:])
    return m.mT if m.size(-2) > m.size(-1) else m


class Muon(torch.optim.Optimizer):
    """Muon over ≥2-D parameters. Parameters whose matrices share a shape (up to transposition) form one group,
    stacked and orthogonalised as one batch: two batched Newton-Schulz calls a step for record 21 instead of
    one call per parameter. A 3-D parameter (the merged QKV weight) contributes one matrix per slice.
    With several ranks, each rank orthogonalises a contiguous share of every batch and the shares are
    all-gathered asynchronously, the gather of one group overlapping the next group's Newton-Schulz work.
    """

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 ns_coefficients=NS_COEFFICIENTS, ns_dtype: torch.dtype = torch.bfloat16, compile_ns: bool = False):
        params = list(params)
        if any(p.ndim < 2 for p in params):
            raise ValueError("Muon handles only parameters with 2 or more dimensions")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        ns_coefficients=tuple(ns_coefficients))
        by_shape: dict[tuple[int, int], list] = {}
        for p in params:
            by_shape.setdefault(tuple(sorted(p.shape[-2:])), []).append(p)
        groups = [dict(params=ps) for _, ps in sorted(by_shape.items(), key=lambda kv: -kv[0][0] * kv[0][1])]
        super().__init__(groups, defaults)
        self.ns_dtype = ns_dtype  # bf16 as in the record; float32 on CPUs, where bf16 matmuls are slow
        self._ns = torch.compile(newton_schulz, dynamic=False) if compile_ns else newton_schulz
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0

    @torch.no_grad()
    def step(self):
        pending = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                bufs.append(state["momentum_buffer"])
            mu = group["momentum"]
            torch._foreach_lerp_(bufs, grads, 1 - mu)  # buf = lerp(buf, g, 1 - mu)
            if group["nesterov"]:
                torch._foreach_lerp_(grads, bufs, mu)  # g = lerp(g, buf, mu)
            mats = [wide_matrices(g) for g in (grads if group["nesterov"] else bufs)]
            counts = [m.size(0) for m in mats]
            X = torch.cat(mats)
            ns = lambda x: self._ns(x, group["ns_steps"], group["ns_coefficients"], self.ns_dtype)
            if self.world_size == 1:
                self._apply(params, counts, ns(X), group["lr"])
                continue
            ws, n = self.world_size, X.size(0)
            share = -(-n // ws)
            if share * ws > n:  # zero matrices orthogonalise to zero: padding is harmless
                X = torch.cat([X, X.new_zeros(share * ws - n, *X.shape[1:])])
            # Gathered in the dtype Newton-Schulz returns (bf16 on GPU), so ranks > 1 update exactly as one rank.
            mine = ns(X[self.rank * share:(self.rank + 1) * share]).contiguous()
            gathered = torch.empty(share * ws, *X.shape[1:], dtype=mine.dtype, device=X.device)
            handle = _all_gather(gathered, mine, async_op=True)
            pending.append((handle, params, counts, gathered, group["lr"]))
        for handle, params, counts, gathered, lr in pending:
            handle.wait()
            self._apply(params, counts, gathered, lr)

    @staticmethod
    def _apply(params, counts, updates: Tensor, lr: float) -> None:
        """p -= lr * max(1, rows/cols)^0.5 * update, each parameter's slices taken back out of the batch."""
        for p, u in zip(params, updates[: sum(counts)].split(counts)):
            tall = p.size(-2) > p.size(-1)
            u = (u.mT if tall else u).reshape(p.shape)
            p.add_(u.to(p.dtype), alpha=-lr * shape_scale(p))
