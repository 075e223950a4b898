"""MLP benchmark (GPU): the plain bf16 ReLU^2 MLP (eager and torch.compile'd) against the fused_mlp op (Triton
c_fc + ReLU^2 forward, dy W2 * 2 sqrt(h) backward, cuBLAS for the other matmuls; eager and inside torch.compile),
forward + backward at the recipe's sizes; then the two kernels alone against the torch ops they replace. Prints a
table of median times (CUDA events) and the largest differences against the plain eager MLP.

    python benchmarks/mlp.py [--recipe fast_1gpu] [--tokens 49152] [--reps 50] [--out results.json]

Sizes: N = the recipe's seq_len tokens (49,152, one micro-step on one GPU), model_dim -> mlp_hidden -> model_dim
(768 -> 3072 -> 768). Weights are float32 parameters cast to bf16 as in training, x is bf16.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F

from speedrun.cuda_timing import median_cuda_ms
from speedrun.recipe import load_recipe


def max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |a - b|, ||a - b|| / ||b||) in float32."""
    a, b = a.float(), b.float()
    return (a - b).abs().max().item(), ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="fast_1gpu", help="recipe whose sizes are timed (default fast_1gpu)")
    ap.add_argument("--tokens", type=int, default=None, help="tokens N (default: the recipe's seq_len)")
    ap.add_argument("--reps", type=int, default=50, help="timed repetitions; the median is reported")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first (compile, autotune)")
    ap.add_argument("--no-compile", action="store_true", help="eager only (skip torch.compile)")
    ap.add_argument("--out", default=None, metavar="FILE.json", help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.warmup < 1 or (args.tokens is not None and args.tokens < 1):
        ap.error("--reps, --warmup and --tokens must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("benchmarks/mlp.py: no CUDA device (torch.cuda.is_available() is False); run it on a GPU")
    from speedrun.kernels import linear_relu2 as lr

    if lr.triton is None:
        sys.exit("benchmarks/mlp.py: Triton is not installed; the fused MLP needs it")
    r = load_recipe(args.recipe)
    N, D, H = args.tokens or r.seq_len, r.model_dim, r.mlp_hidden
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | triton {lr.triton.__version__}")
    print(f"recipe {args.recipe}: N={N:,} tokens, {D} -> {H} -> {D}, bf16 activations, float32 weights")
    torch.manual_seed(0)
    x = F.rms_norm(torch.randn(N, D, device="cuda"), (D,)).bfloat16().requires_grad_()
    bound = 3**0.5 * 0.5 * D**-0.5
    w_fc = torch.empty(H, D, device="cuda").uniform_(-bound, bound).requires_grad_()
    w_proj = (torch.randn(D, H, device="cuda") * 0.02).requires_grad_()
    g = torch.randn(N, D, device="cuda").bfloat16()
    params = (x, w_fc, w_proj)

    def fwd_bwd(f):
        def step():
            for p in params:
                p.grad = None
            y = f(x, w_fc, w_proj)
            y.backward(g)
            return y

        return step

    def outputs(step):
        y = step()
        return [y.detach().clone()] + [p.grad.clone() for p in params]

    variants = [("plain eager", lr.relu2_mlp_reference), ("fused eager", lr.fused_linear_relu2_mlp)]
    if not args.no_compile:
        variants += [("plain compiled", torch.compile(lr.relu2_mlp_reference, dynamic=False)),
                     ("fused compiled", torch.compile(lr.fused_linear_relu2_mlp, dynamic=False))]
    rows, failures, baseline = [], [], None
    names = ("y", "grad_x", "grad_w_fc", "grad_w_proj")
    for name, f in variants:
        row = dict(what="MLP forward+backward", variant=name)
        try:
            step = fwd_bwd(f)
            out = outputs(step)
            torch.cuda.reset_peak_memory_stats()
            base_mem = torch.cuda.memory_allocated()
            row["ms"] = median_cuda_ms(step, args.reps, args.warmup)
            row["peak_extra_mib"] = (torch.cuda.max_memory_allocated() - base_mem) / 2**20
            if baseline is None:
                baseline = out
            row["diffs"] = {n: max_diff(a, b) for n, a, b in zip(names, out, baseline)}
        except Exception as e:  # one failing variant (say a compile error) must not hide the other numbers
            row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            failures.append(row)
        rows.append(row)

    # the kernels alone against the torch ops they replace
    xb, w1, w2 = x.detach(), w_fc.detach().bfloat16(), w_proj.detach().bfloat16()
    h = lr.linear_relu2(xb, w1)
    pre = xb @ w1.T  # the plain backward has pre (or relu(pre)) kept from the forward, as autograd does
    kernels = [
        ("c_fc + ReLU^2", lambda: F.relu(xb @ w1.T).square(), lambda: lr.linear_relu2(xb, w1)),
        ("dy W2 * 2relu(pre)", lambda: (g @ w2) * 2 * F.relu(pre), lambda: lr.relu2_backward(g, w2, h)),
        ("  (matmul alone)", lambda: xb @ w1.T, None),
    ]
    for what, torch_fn, kernel_fn in kernels:
        row = dict(what=what, variant="kernel vs torch")
        try:
            row["torch_ms"] = median_cuda_ms(torch_fn, args.reps, args.warmup)
            if kernel_fn is not None:
                row["ms"] = median_cuda_ms(kernel_fn, args.reps, args.warmup)
                row["diffs"] = {"out": max_diff(kernel_fn(), torch_fn())}
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            failures.append(row)
        rows.append(row)
    autotuned = {str(key): str(cfg) for key, cfg in getattr(lr._linear_relu2_autotuned, "cache", {}).items()}

    plain = next((r_["ms"] for r_ in rows if r_.get("variant") == "plain eager" and "ms" in r_), None)
    print(f"\n{'what':<22} {'variant':<16} {'ms':>8} {'torch ms':>9} {'vs plain':>9} {'peak MiB':>9}  max |diff| "
          "(rel) against the plain eager MLP / the torch op")
    for r_ in rows:
        if "error" in r_:
            print(f"{r_['what']:<22} {r_['variant']:<16} FAILED {r_['error']}")
            continue
        ms = f"{r_['ms']:.3f}" if "ms" in r_ else "-"
        t_ms = f"{r_['torch_ms']:.3f}" if "torch_ms" in r_ else "-"
        ref = r_.get("torch_ms", plain if r_["what"].startswith("MLP") else None)
        speed = f"{ref / r_['ms']:.2f}x" if ref and "ms" in r_ else "-"
        peak = f"{r_['peak_extra_mib']:.0f}" if "peak_extra_mib" in r_ else "-"
        diffs = ", ".join(f"{n} {a:.2e} ({b:.1e})" for n, (a, b) in r_.get("diffs", {}).items())
        print(f"{r_['what']:<22} {r_['variant']:<16} {ms:>8} {t_ms:>9} {speed:>9} {peak:>9}  {diffs}")
    for key, cfg in autotuned.items():
        print(f"autotune picked {cfg} for (rows, cols, K, backward, dtypes) = {key}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=lr.triton.__version__,
                           recipe=args.recipe, N=N, D=D, H=H, reps=args.reps, rows=rows, autotuned=autotuned), f,
                      indent=1)
        print(f"wrote {args.out}")
    if failures:
        sys.exit(f"benchmarks/mlp.py: {len(failures)} measurement(s) failed (see FAILED rows)")


if __name__ == "__main__":
    main()
