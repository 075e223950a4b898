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
    X = X.reshape(-1, *X.shape[-2:])  # baddbmm takes one batch dimension
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * norm_margin + 1e-7)
    for a, b, c in schedule:
        A = X @ X.mT
        # b A + c A A and a X + B X as the matmuls' own epilogues (beta, alpha): no product written, then read back
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)
        X = torch.baddbmm(X, B, X, beta=a)
    X = X.reshape(G.mT.shape if tall else G.shape)
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


# Inductor settings for Muon's compiled functions. Their per-parameter work is many small independent kernels, each
# compiled and tuned on its own: combo kernels run independent ones side by side in one launch (57 -> 29 distinct
# kernels, 190 -> 120 a step), and a pointwise stacking of up to 64 inputs writes each group's stack in one. On an H100
# (part 51, benchmarks/muon_step.py): the step 4.57 against 4.83 ms, its first call 20.1 against 28.1 s on empty
# compile folders and 2.9 against 8.8 s on warm ones. One rank's three passes as one graph a group (part 52): 15.7
# against 18.2 s on empty folders, the step the same (4.57 ms; main's eager passes 6.14 ms and 10.3 s).
COMPILE_OPTIONS = {"combo_kernels": True, "max_pointwise_cat_inputs": 64}

# torch >= 2.13 renames all_gather_into_tensor (deprecated there) to all_gather_single.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def wide_matrices(t: Tensor) -> Tensor:
    m = t.reshape(-1, *t.shape[-2:])
    return m.mT if m.size(-2) > m.size(-1) else m


def momentum_directions(grads: list[Tensor], bufs: list[Tensor], momentum: Tensor, one_minus_momentum: Tensor,
                        nesterov: bool, dtype: torch.dtype) -> Tensor:
    """Each momentum buffer moved in place (buf = lerp(buf, g, 1 - mu)); returns every matrix's direction (Nesterov:
    lerp(g, buf, mu), else the buffer) in the wide orientation, stacked and cast to `dtype`, the input Newton-Schulz
    takes. Compiled, it is one pass over the gradients and buffers. `momentum`, `1 - momentum`: 0-d tensors, so that
    a new value each step (the warm-up) needs no new compile."""
    directions = []
    for g, buf in zip(grads, bufs):
        buf.lerp_(g, one_minus_momentum)
        d = g.lerp(buf, momentum) if nesterov else buf
        directions.append(wide_matrices(d).to(dtype))
    return torch.cat(directions)


def apply_updates(params: list[Tensor], updates: Tensor, lr: Tensor, second_moment: Tensor | None,
                  beta2: float) -> None:
    """p -= lr * shape_scale(p) * update, each parameter's update taken in order from the stacked `updates` (wide
    orientation) and, with a NorMuon `second_moment` (updated in place), scaled by it first. Compiled, one pass."""
    if second_moment is not None:
        updates = normuon_scale(updates, second_moment, beta2, per_row=updates.size(-2) == updates.size(-1))
    start = 0
    for p in params:
        count = p.numel() // (p.size(-2) * p.size(-1))
        u = updates[start:start + count]
        start += count
        u = (u.mT if p.size(-2) > p.size(-1) else u).reshape(p.shape).to(p.dtype)
        p.sub_(u * (lr * shape_scale(p)))


class Muon(torch.optim.Optimizer):
    """Muon over >=2-D parameters. Matrices of one shape (up to transposition; a 3-D parameter gives one per slice)
    form a group orthogonalised as one batch: two batched Newton-Schulz calls a step for record 21, not one per
    parameter. With several ranks, each orthogonalises a contiguous share of every batch and the shares are
    all-gathered asynchronously, the gather of one group overlapping the next group's Newton-Schulz work.
    A group's step is three functions, each compiled with `compile_ns`: the momentum pass, Newton-Schulz, the update
    pass (NorMuon's scaling and the parameters' update). One rank runs them as one compiled graph; several ranks
    compile them apart, the all-gather between Newton-Schulz and the update."""

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
        compiled = (lambda f: torch.compile(f, dynamic=False, options=COMPILE_OPTIONS)) if compile_ns else (lambda f: f)
        self._directions, self._ns, self._apply = compiled(momentum_directions), compiled(ns), compiled(apply_updates)

        def local_step(grads, bufs, params, mu, one_minus_mu, lr, second_moment, beta2, nesterov, steps, coefficients):
            X = momentum_directions(grads, bufs, mu, one_minus_mu, nesterov, self.ns_dtype)
            apply_updates(params, ns(X, steps, coefficients, self.ns_dtype), lr, second_moment, beta2)

        # One rank: a group's three passes as one compiled graph, its fixed compile cost paid once, not three times
        self._local_step = compiled(local_step)
        # lr and momentum as 0-d tensors on the parameters' device, refilled each step: values, not compile constants
        self._scalars: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0

    def _group_scalars(self, index: int, group, device) -> tuple[Tensor, Tensor, Tensor]:
        if index not in self._scalars:
            self._scalars[index] = tuple(torch.zeros((), dtype=torch.float32, device=device) for _ in range(3))
        lr, mu, one_minus_mu = self._scalars[index]
        lr.fill_(group["lr"])
        mu.fill_(group["momentum"])
        one_minus_mu.fill_(1 - group["momentum"])
        return lr, mu, one_minus_mu

    @torch.no_grad()
    def step(self):
        pending = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                bufs.append(state["momentum_buffer"])
            lr, mu, one_minus_mu = self._group_scalars(index, group, params[0].device)
            if self.world_size == 1:
                second_moment = self._second_moment(group, params)
                self._local_step([p.grad for p in params], bufs, params, mu, one_minus_mu, lr, second_moment,
                                 group["normuon_beta2"], group["nesterov"], group["ns_steps"], group["ns_coefficients"])
                continue
            X = self._directions([p.grad for p in params], bufs, mu, one_minus_mu, group["nesterov"], self.ns_dtype)
            ns = lambda x: self._ns(x, group["ns_steps"], group["ns_coefficients"], self.ns_dtype)
            ws, n = self.world_size, X.size(0)
            share = -(-n // ws)
            if share * ws > n:  # zero matrices orthogonalise to zero: padding is harmless
                X = torch.cat([X, X.new_zeros(share * ws - n, *X.shape[1:])])
            # Gathered in the dtype Newton-Schulz returns (bf16 on GPU), so ranks > 1 update exactly as one rank.
            mine = ns(X[self.rank * share:(self.rank + 1) * share]).contiguous()
            gathered = torch.empty(share * ws, *X.shape[1:], dtype=mine.dtype, device=X.device)
            handle = _all_gather(gathered, mine, async_op=True)
            pending.append((handle, group, params, gathered[:n], lr))
        for handle, group, params, gathered, lr in pending:
            handle.wait()
            # NorMuon runs after the gather, on every rank alike: cheap elementwise work, same result as one rank.
            self._update(group, params, gathered, lr)

    def _second_moment(self, group, params) -> Tensor | None:
        """NorMuon's buffer for the group's stacked batch (wide orientation), kept with its first parameter."""
        if not group["normuon_beta2"]:
            return None
        state = self.state[params[0]]
        if "normuon_second_moment" not in state:
            k = sum(p.numel() // (p.size(-2) * p.size(-1)) for p in params)
            rows, cols = sorted(params[0].shape[-2:])
            shape = (k, rows, 1) if rows == cols else (k, 1, cols)
            state["normuon_second_moment"] = torch.zeros(shape, dtype=torch.float32, device=params[0].device)
        return state["normuon_second_moment"]

    def _update(self, group, params, updates: Tensor, lr: Tensor) -> None:
        self._apply(params, updates, lr, self._second_moment(group, params), group["normuon_beta2"])
