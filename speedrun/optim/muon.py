"""Muon: momentum SGD, update orthogonalised by quintic Newton-Schulz; `step` needs gradients averaged across ranks."""

import torch
import torch.distributed as dist
from torch import Tensor

from speedrun.compile_cache import key_caches_to_source

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)

# Polar Express (Amsel, Persson, Musco & Gower, 2025): one (a, b, c) per iteration, chosen minimax-optimally so
# that 5 iterations take singular values in [1e-3, 1] close to 1 (the fixed quintic stops at ~[0.7, 1.2]).
# Used with the input normalised by 1.02 x its Frobenius norm, the margin these coefficients were derived for.
POLAR_EXPRESS_COEFFICIENTS = ((8.156554524902461, -22.48329292557795, 15.878769915207462),
                              (4.042929935166739, -2.808917465908714, 0.5000178451051316),
                              (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
                              (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
                              (2.3465413258596377, -1.7097828382687081, 0.42323551169305323))
POLAR_EXPRESS_NORM_MARGIN = 1.02


def newton_schulz(G: Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, dtype=torch.bfloat16,
                  norm_margin: float = 1.0) -> Tensor:
    """Approximately orthogonalise G (..., rows, cols) slice by slice: singular values pushed into ~[0.7, 1.2].
    On the wide orientation, each slice normalised by its Frobenius norm (times `norm_margin`), repeats A = X X^T;
    B = b A + c A A; X = a X + B X. `coefficients`: one (a, b, c) for all iterations, or one per iteration."""
    if G.ndim < 2:
        raise ValueError("newton_schulz needs a matrix (or a batch of matrices)")
    per_step = isinstance(coefficients[0], (tuple, list))
    schedule = list(coefficients)[:steps] if per_step else [tuple(coefficients)] * steps
    if len(schedule) < steps:
        raise ValueError(f"{len(schedule)} coefficient triples for {steps} steps")
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * norm_margin + 1e-7)
    for a, b, c in schedule:
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if tall:
        X = X.mT
    return X


def polar_express(G: Tensor, steps: int = 5, dtype=torch.bfloat16) -> Tensor:
    return newton_schulz(G, steps, POLAR_EXPRESS_COEFFICIENTS, dtype, POLAR_EXPRESS_NORM_MARGIN)


def normuon_scale(U: Tensor, second_moment: Tensor, beta2: float, per_row: bool) -> Tensor:
    """NorMuon (Li et al., 2025): divide each neuron's share of the orthogonalised update U (k, rows, cols, wide) by
    the root of an EMA of its mean square (`second_moment` (k, rows, 1) if `per_row`, for square matrices, else
    (k, 1, cols); float32, updated in place), then rescale each matrix to its Frobenius norm: lr keeps its meaning."""
    u = U.float()
    mean_sq = u.square().mean(dim=-1 if per_row else -2, keepdim=True)
    second_moment.lerp_(mean_sq, 1 - beta2)
    scaled = u * second_moment.clamp_min(1e-10).rsqrt()
    ratio = u.norm(dim=(-2, -1), keepdim=True) / scaled.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-10)
    return scaled * ratio


def shape_scale(p: Tensor) -> float:
    return max(1.0, p.size(-2) / p.size(-1)) ** 0.5


# torch >= 2.13 renames all_gather_into_tensor (deprecated there) to all_gather_single.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def wide_matrices(t: Tensor) -> Tensor:
    m = t.reshape(-1, *t.shape[-2:])
    return m.mT if m.size(-2) > m.size(-1) else m


class Muon(torch.optim.Optimizer):
    """Muon over >=2-D parameters. Matrices of one shape (up to transposition; a 3-D parameter gives one per slice)
    form a group orthogonalised as one batch: two batched Newton-Schulz calls a step for record 21, not one per
    parameter. With several ranks, each orthogonalises a contiguous share of every batch and the shares are
    all-gathered asynchronously, the gather of one group overlapping the next group's Newton-Schulz work."""

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 ns_coefficients=NS_COEFFICIENTS, ns_dtype: torch.dtype = torch.bfloat16, compile_ns: bool = False,
                 orthogonalizer: str = "newton_schulz", normuon_beta2: float = 0.0):
        params = list(params)
        if any(p.ndim < 2 for p in params):
            raise ValueError("Muon handles only parameters with 2 or more dimensions")
        if orthogonalizer not in ("newton_schulz", "polar_express"):
            raise ValueError(f"orthogonalizer {orthogonalizer!r}: expected newton_schulz or polar_express")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        ns_coefficients=tuple(ns_coefficients), normuon_beta2=normuon_beta2)
        by_shape: dict[tuple[int, int], list] = {}
        for p in params:
            by_shape.setdefault(tuple(sorted(p.shape[-2:])), []).append(p)
        groups = [dict(params=ps) for _, ps in sorted(by_shape.items(), key=lambda kv: -kv[0][0] * kv[0][1])]
        super().__init__(groups, defaults)
        self.ns_dtype = ns_dtype  # bf16 as in the record; float32 on CPUs, where bf16 matmuls are slow
        if orthogonalizer == "polar_express":
            ns = lambda x, steps, coefficients, dtype: polar_express(x, steps, dtype)
        else:
            ns = newton_schulz
        if compile_ns:
            key_caches_to_source()
        self._ns = torch.compile(ns, dynamic=False) if compile_ns else ns
        self._normuon = torch.compile(normuon_scale, dynamic=False) if compile_ns else normuon_scale
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
                self._apply(params, counts, self._normalise(group, params, ns(X)), group)
                continue
            ws, n = self.world_size, X.size(0)
            share = -(-n // ws)
            if share * ws > n:  # zero matrices orthogonalise to zero: padding is harmless
                X = torch.cat([X, X.new_zeros(share * ws - n, *X.shape[1:])])
            # Gathered in the dtype Newton-Schulz returns (bf16 on GPU), so ranks > 1 update exactly as one rank.
            mine = ns(X[self.rank * share:(self.rank + 1) * share]).contiguous()
            gathered = torch.empty(share * ws, *X.shape[1:], dtype=mine.dtype, device=X.device)
            handle = _all_gather(gathered, mine, async_op=True)
            pending.append((handle, group, params, counts, gathered))
        for handle, group, params, counts, gathered in pending:
            handle.wait()
            # NorMuon runs after the gather, on every rank alike: cheap elementwise work, same result as one rank.
            self._apply(params, counts, self._normalise(group, params, gathered[: sum(counts)]), group)

    def _normalise(self, group, params, updates: Tensor) -> Tensor:
        beta2 = group["normuon_beta2"]
        if not beta2:
            return updates
        k, rows, cols = updates.shape
        per_row = rows == cols
        state = self.state[params[0]]  # one buffer for the group's stacked batch, kept with its first parameter
        if "normuon_second_moment" not in state:
            shape = (k, rows, 1) if per_row else (k, 1, cols)
            state["normuon_second_moment"] = torch.zeros(shape, dtype=torch.float32, device=updates.device)
        return self._normuon(updates, state["normuon_second_moment"], beta2, per_row)

    @staticmethod
    def _apply(params, counts, updates: Tensor, group) -> None:
        lr = group["lr"]
        for p, u in zip(params, updates[: sum(counts)].split(counts)):
            tall = p.size(-2) > p.size(-1)
            u = (u.mT if tall else u).reshape(p.shape).to(p.dtype)
            p.add_(u, alpha=-lr * shape_scale(p))
