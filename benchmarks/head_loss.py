"""Head + loss benchmark (GPU): the FP8 head and the soft-capped cross-entropy, forward and backward, unfused
(the compiled record-21 path: FP8 matmul, float32 soft cap, F.cross_entropy, autograd) against the fused op
(`fp8_softcap_cross_entropy`: the Triton loss kernel writes the e5m2 gradient in the forward pass), and the
loss kernel alone at several block sizes and warp counts; then the two paths and the kernel (default launch) with
multi-token prediction (2 extra targets). Prints a table of median times (CUDA events).

    python benchmarks/head_loss.py [--tokens 49152] [--json out.json] [--kernel-only]

--kernel-only times the loss kernel alone at its default launch, without and with the extra targets, with the
approximate-tanh sigmoid (the default on a GPU) and with the exact one (seconds, not minutes: nothing to compile but
the kernel).
--transpose times only the e5m2 gradient's transposed copy (what the weight gradient's FP8 matmul reads) at the full
head and at the sampled head's 12,288 rows: Inductor's compiled copy, torch's eager copy and our Triton kernel
(`speedrun.kernels.transpose`) at several tiles, each checked bit for bit, and names the fastest launch.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

import torch
import torch.nn.functional as F
from cuda_timing import median_cuda_ms

from speedrun.kernels.softcap_ce import softcap_cross_entropy_with_grad
from speedrun.kernels.transpose import transposed_copy
from speedrun.model.fp8 import fp8_linear, fp8_softcap_cross_entropy
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets

CAP, DIV, SCALES = 30.0, 7.5, (2.0, 512.0, 524288.0)
TRANSPOSE_LAUNCHES = [(64, 64, 4), (128, 128, 4), (128, 128, 8), (64, 256, 4), (256, 64, 8), (128, 64, 4),
                      (64, 128, 4), (256, 256, 8), (128, 256, 8), (256, 128, 8)]


def transpose_rows(N: int, V: int) -> list[dict]:
    """The transposed copy of an (N, V) e5m2 gradient (random bytes): median ms and GB/s (bytes read + written)."""
    g = torch.randint(0, 256, (N, V), dtype=torch.uint8, device="cuda").view(torch.float8_e5m2)
    want = g.view(torch.uint8).t().contiguous()
    inductor = torch.compile(lambda t: t.t().contiguous(), dynamic=False)
    paths = [("Inductor's compiled copy", lambda: inductor(g)), ("torch eager copy", lambda: g.t().contiguous())]
    paths += [(f"ours {bm} x {bn}, {w} warps", lambda bm=bm, bn=bn, w=w: transposed_copy(g, bm, bn, w))
              for bm, bn, w in TRANSPOSE_LAUNCHES]
    rows = []
    for name, fn in paths:
        exact = torch.equal(fn().view(torch.uint8), want)
        ms = median_cuda_ms(fn)
        rows.append(dict(what=f"transposed copy {N} x {V}: {name}", ms=ms, gb_per_s=2 * N * V / 1e9 / ms * 1e3,
                         exact=exact))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=49152)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--json", default=None)
    ap.add_argument("--kernel-only", action="store_true", help="only the loss kernel, default launch, plain and MTP")
    ap.add_argument("--transpose", action="store_true", help="only the e5m2 gradient's transposed copies")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("head_loss: needs a CUDA GPU", file=sys.stderr)
        sys.exit(2)
    torch.manual_seed(0)
    N, K, V = args.tokens, args.dim, args.vocab
    if args.transpose:
        return report(transpose_rows(N, V) + transpose_rows(N, 12288), N, K, V, args.json, name_fastest=True)
    x = F.rms_norm(torch.randn(N, K, device="cuda"), (K,)).bfloat16().requires_grad_()
    w = (torch.randn(V, K, device="cuda") * 0.02).requires_grad_()
    targets = torch.randint(0, 50257, (N,), device="cuda")

    @torch.compile(dynamic=False)
    def unfused(x, w, targets):
        logits = CAP * torch.sigmoid(fp8_linear(x, w, *SCALES).float() / DIV)
        return F.cross_entropy(logits, targets)

    def fwd_bwd(loss_fn):
        def run():
            x.grad = w.grad = None
            loss_fn(x, w, targets).backward()
        return run

    fused = lambda x, w, t: fp8_softcap_cross_entropy(x, w, t, *SCALES, CAP, DIV)
    # multi-token prediction, 2 extra targets (+2, +3): the plain path's loss and the fused op's
    extra = mtp_targets(targets, 2)
    weights = torch.tensor([0.5, 0.25], device="cuda")

    @torch.compile(dynamic=False)
    def unfused_mtp(x, w, targets):
        logits = CAP * torch.sigmoid(fp8_linear(x, w, *SCALES).float() / DIV)
        return mtp_cross_entropy(logits, targets, extra, weights)

    fused_mtp = lambda x, w, t: fp8_softcap_cross_entropy(x, w, t, *SCALES, CAP, DIV, extra, weights)
    rows = []
    for name, fn in [] if args.kernel_only else [("unfused (compiled) fwd+bwd", unfused), ("fused op fwd+bwd", fused),
                     ("unfused (compiled) fwd+bwd, MTP +2 +3", unfused_mtp), ("fused op fwd+bwd, MTP +2 +3", fused_mtp)]:
        torch.cuda.reset_peak_memory_stats()
        ms = median_cuda_ms(fwd_bwd(fn))
        rows.append(dict(what=name, ms=ms, peak_mib=torch.cuda.max_memory_allocated() / 2**20))
    with torch.no_grad():
        logits = (x @ w.bfloat16().T).contiguous()
    for block in (2048,) if args.kernel_only else (2048, 4096, 8192):
        for warps in (4,) if args.kernel_only else (4, 8, 16):
            run = lambda: softcap_cross_entropy_with_grad(logits, targets, CAP, DIV, 10.0, torch.float8_e5m2,
                                                          block=block, num_warps=warps)
            ms = median_cuda_ms(run)
            gbytes = N * V * 3 / 1e9  # bf16 read once + e5m2 written, the least traffic possible
            rows.append(dict(what=f"loss kernel alone, block {block}, {warps} warps", ms=ms,
                             gb_per_s=gbytes / ms * 1e3))
    run = lambda: softcap_cross_entropy_with_grad(logits, targets, CAP, DIV, 10.0, torch.float8_e5m2, extra=extra,
                                                  extra_weights=weights)
    ms = median_cuda_ms(run)
    rows.append(dict(what="loss kernel alone, default launch, MTP +2 +3", ms=ms, gb_per_s=N * V * 3 / 1e9 / ms * 1e3))
    for mtp in (False, True):  # the exact sigmoid (two special-function ops, not one), same launch
        run = lambda mtp=mtp: softcap_cross_entropy_with_grad(
            logits, targets, CAP, DIV, 10.0, torch.float8_e5m2, extra=extra if mtp else None,
            extra_weights=weights if mtp else None, fast_sigmoid=False)
        ms = median_cuda_ms(run)
        rows.append(dict(what="loss kernel alone, exact sigmoid" + (", MTP +2 +3" if mtp else ""), ms=ms,
                         gb_per_s=N * V * 3 / 1e9 / ms * 1e3))
    report(rows, N, K, V, args.json)


def report(rows: list[dict], N: int, K: int, V: int, json_path: str | None, name_fastest: bool = False) -> None:
    print(f"\n{torch.cuda.get_device_name()} | torch {torch.__version__} | N={N} K={K} V={V}")
    print(f"{'what':<58} {'ms':>8}  extra")
    for r in rows:
        extra = f"peak {r['peak_mib']:,.0f} MiB" if "peak_mib" in r else f"{r['gb_per_s']:,.0f} GB/s (min traffic)"
        if "exact" in r:
            extra = f"{r['gb_per_s']:,.0f} GB/s, {'exact' if r['exact'] else 'NOT EXACT'}"
        print(f"{r['what']:<58} {r['ms']:>8.3f}  {extra}")
    if name_fastest:  # over both shapes, exact launches only
        totals = collections.Counter()
        for r in rows:
            launch = r["what"].split(": ")[1]
            if launch.startswith("ours") and r["exact"]:
                totals[launch] += r["ms"]
        best = min(totals, key=totals.get)
        print(f"fastest launch over both shapes: {best} ({totals[best]:.3f} ms in all)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, N=N, K=K, V=V, rows=rows), f,
                      indent=1)


if __name__ == "__main__":
    main()
