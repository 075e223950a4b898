"""Newton-Schulz benchmark (GPU): Muon's orthogonalisation with torch's products against the Triton symmetric
kernel (`newton_schulz(..., symmetric_kernel=True)`), on the batches Muon stacks for a recipe's model, eager and
under torch.compile (train.py compiles it on CUDA); then the kernel alone, X X^T and b A + c A A, per tile config
against torch. Prints a table of median times (CUDA events) and the largest differences between the outputs.

    python benchmarks/newton_schulz.py [--recipe fast_1gpu] [--reps 50] [--out results.json]

The batches come from the recipe's model built on the meta device and grouped as `Muon` groups them (matrices
of one shape in wide orientation, stacked): for fast_1gpu 22 x (768, 3072) MLP matrices and 44 x (768, 768)
attention slices. Inputs are random float32 "gradients" (what Muon passes), orthogonalised in bf16.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from speedrun.cuda_timing import median_cuda_ms
from speedrun.model.gpt import GPT
from speedrun.optim.muon import (
    NS_COEFFICIENTS,
    POLAR_EXPRESS_COEFFICIENTS,
    POLAR_EXPRESS_NORM_MARGIN,
    newton_schulz,
    wide_matrices,
)
from speedrun.recipe import load_recipe


def muon_batches(recipe: str) -> list[tuple[int, int, int]]:
    """(count, rows, cols) of each batch Muon orthogonalises for `recipe`, in Muon's order (largest first)."""
    r = load_recipe(recipe)
    with torch.device("meta"):
        model = GPT(r)
    counts: dict[tuple[int, int], int] = {}
    for p in model.param_groups()["muon"]:
        k, rows, cols = wide_matrices(p).shape
        counts[(rows, cols)] = counts.get((rows, cols), 0) + k
    return [(k, rows, cols) for (rows, cols), k in sorted(counts.items(), key=lambda kv: -kv[0][0] * kv[0][1])]


def orthogonalizer(recipe: str):
    """f(G, symmetric_kernel, dtype=bf16) as Muon calls it for `recipe`, and a one-line description."""
    r = load_recipe(recipe)
    if r.orthogonalizer == "polar_express":
        coefficients, margin = POLAR_EXPRESS_COEFFICIENTS, POLAR_EXPRESS_NORM_MARGIN
    else:
        coefficients, margin = tuple(r.ns_coefficients), 1.0
    f = lambda G, symmetric_kernel, dtype=torch.bfloat16: newton_schulz(G, r.ns_steps, coefficients, dtype, margin,
                                                                        symmetric_kernel=symmetric_kernel)
    return f, f"{r.orthogonalizer}, {r.ns_steps} steps, bf16"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |a - b|, ||a - b|| / ||b||) in float32."""
    a, b = a.float(), b.float()
    return (a - b).abs().max().item(), ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="fast_1gpu", help="recipe whose Muon batches are timed (default fast_1gpu)")
    ap.add_argument("--reps", type=int, default=50, help="timed repetitions; the median is reported")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls first (compile, autotune)")
    ap.add_argument("--no-compile", action="store_true", help="eager only (skip torch.compile)")
    ap.add_argument("--out", default=None, metavar="FILE.json", help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.warmup < 1:
        ap.error("--reps and --warmup must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("benchmarks/newton_schulz.py: no CUDA device (torch.cuda.is_available() is False); run it on a GPU")
    from speedrun.kernels import symmetric_matmul as sm

    if sm.triton is None:
        sys.exit("benchmarks/newton_schulz.py: Triton is not installed; the symmetric kernel needs it")
    batches = muon_batches(args.recipe)
    ortho, what = orthogonalizer(args.recipe)
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | triton {sm.triton.__version__}")
    print(f"recipe {args.recipe}: {what}; Muon batches " + ", ".join(f"{k} x ({m}, {n})" for k, m, n in batches))
    torch.manual_seed(0)
    rows, failures = [], []

    def record(row: dict, fn, fatal: bool = True) -> None:
        try:
            row.update(fn())
        except Exception as e:  # one failing variant (say a compile error) must not hide the other numbers
            row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            if fatal:
                failures.append(row)
        rows.append(row)

    # 1) the whole orthogonalisation, as Muon runs it, per batch and summed over the batches (one Muon step)
    modes = [("eager", lambda f: f)]
    if not args.no_compile:
        modes.append(("compiled", lambda f: torch.compile(f, dynamic=False)))
    totals: dict[str, dict[str, float]] = {}
    for k, m, n in batches:
        G = torch.randn(k, m, n, device="cuda")
        exact = ortho(G, False, torch.float32)  # float32 products: the yardstick for both bf16 paths
        for mode, wrap in modes:
            plain = wrap(lambda G: ortho(G, False))
            kernel = wrap(lambda G: ortho(G, True))

            def measure():
                out_t, out_k = plain(G), kernel(G)
                t_ms = median_cuda_ms(lambda: plain(G), args.reps, args.warmup)
                k_ms = median_cuda_ms(lambda: kernel(G), args.reps, args.warmup)
                abs_d, rel_d = max_diff(out_k, out_t)
                return dict(torch_ms=t_ms, kernel_ms=k_ms, speedup=t_ms / k_ms, max_abs_diff=abs_d,
                            rel_diff=rel_d, torch_err_vs_fp32=max_diff(out_t, exact)[1],
                            kernel_err_vs_fp32=max_diff(out_k, exact)[1])

            row = dict(what="newton_schulz", mode=mode, shape=[k, m, n])
            record(row, measure)
            if "error" not in row:
                tot = totals.setdefault(mode, dict(torch_ms=0.0, kernel_ms=0.0))
                tot["torch_ms"] += row["torch_ms"]
                tot["kernel_ms"] += row["kernel_ms"]

    # 2) the kernel alone, each tile config and the autotuned choice, against torch's products
    a, b, c = NS_COEFFICIENTS
    configs = [None, *sm.CONFIGS]
    for k, m, n in batches:
        X = torch.randn(k, m, n, device="cuda").bfloat16()
        X = X / X.float().norm(dim=(-2, -1), keepdim=True).bfloat16()  # as Newton-Schulz normalises it
        A = X @ X.mT
        for op, torch_fn, kernel_fn in [
            ("X X^T", lambda: X @ X.mT, lambda cfg: sm.symmetric_matmul(X, config=cfg)),
            ("b A + c A A", lambda: b * A + c * A @ A, lambda cfg: sm.symmetric_matmul(A, c, b, A, config=cfg)),
        ]:
            t_ms = None
            for cfg in configs:
                def measure(cfg=cfg):
                    nonlocal t_ms
                    if t_ms is None:
                        t_ms = median_cuda_ms(torch_fn, args.reps, args.warmup)
                    out = kernel_fn(cfg)
                    want = torch_fn()
                    k_ms = median_cuda_ms(lambda: kernel_fn(cfg), args.reps, args.warmup)
                    abs_d, rel_d = max_diff(out, want)
                    return dict(torch_ms=t_ms, kernel_ms=k_ms, speedup=t_ms / k_ms, max_abs_diff=abs_d, rel_diff=rel_d,
                                symmetric=bool(torch.equal(out, out.mT)))

                row = dict(what=op, mode="autotuned" if cfg is None else "config " + "/".join(map(str, cfg)),
                           shape=[k, m, n])
                # a fixed config may not fit (shared memory): reported, not fatal; the autotuner skips such configs
                record(row, measure, fatal=cfg is None)
    autotuned = {str(key): str(cfg) for key, cfg in getattr(sm._symmetric_matmul_autotuned, "cache", {}).items()}

    print(f"\n{'what':<14} {'mode':<20} {'shape':<16} {'torch ms':>9} {'kernel ms':>10} {'speedup':>8} "
          f"{'max|diff|':>10} {'rel diff':>9}  notes")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        if "error" in r:
            print(f"{r['what']:<14} {r['mode']:<20} {shape:<16} FAILED {r['error']}")
            continue
        notes = (f"err vs fp32: torch {r['torch_err_vs_fp32']:.4f}, kernel {r['kernel_err_vs_fp32']:.4f}"
                 if "torch_err_vs_fp32" in r else ("symmetric" if r["symmetric"] else "NOT SYMMETRIC"))
        print(f"{r['what']:<14} {r['mode']:<20} {shape:<16} {r['torch_ms']:>9.3f} {r['kernel_ms']:>10.3f} "
              f"{r['speedup']:>7.2f}x {r['max_abs_diff']:>10.2e} {r['rel_diff']:>9.2e}  {notes}")
    for mode, tot in totals.items():
        print(f"one Muon step's orthogonalisation ({mode}): torch {tot['torch_ms']:.3f} ms, kernel "
              f"{tot['kernel_ms']:.3f} ms ({tot['torch_ms'] / tot['kernel_ms']:.2f}x)")
    for key, cfg in autotuned.items():
        print(f"autotune picked {cfg} for (m, n, addend, dtypes) = {key}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=sm.triton.__version__,
                           recipe=args.recipe, orthogonalizer=what, batches=batches, reps=args.reps, rows=rows,
                           totals=totals, autotuned=autotuned), f, indent=1)
        print(f"wrote {args.out}")
    if failures:
        sys.exit(f"benchmarks/newton_schulz.py: {len(failures)} measurement(s) failed (see FAILED rows)")



if __name__ == "__main__":
    main()
