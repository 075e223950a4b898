"""The FP8 MLP's ReLU² kernels (GPU) at the track's shape, over launch configurations: block rows x block columns x
warps. Each call is timed at every configuration (median of CUDA events) and checked bit for bit against the default
configuration's output; the table gives ms, the memory throughput that ms implies (the least bytes each call must
move) and the ratio to the default.

    python benchmarks/relu2_fp8.py [--tokens 49152] [--hidden 3072] [--configs 64x128x8,128x64x4,...] [--json F]

The calls: `fwd` relu(p)² to e4m3, row-major, with its maximum (the forward); `grad` g·2relu(p) to e5m2, row-major
and transposed, with its maximum; `grad_h` the same and relu(p)² to e4m3 transposed (the backward's call since part
53: c_proj's weight gradient takes that copy). Part 20's profile put the calls at 0.24 ms each, about twice their
memory-bound time.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

DEFAULT = (64, 128, 8)  # relu2_fp8 / relu2_grad_fp8's block_n, block_h, num_warps
GRID = [(bn, bh, w) for bn in (32, 64, 128) for bh in (64, 128, 256) for w in (4, 8) if bn * bh <= 16384]
# the least bytes a call moves per element: bf16 reads, fp8 writes
BYTES_PER_ELEMENT = {"fwd": 2 + 1, "grad": 2 + 2 + 1 + 1, "grad_h": 2 + 2 + 1 + 1 + 1}


def parse_configs(text: str | None) -> list[tuple[int, int, int]]:
    """'64x128x8,32x256x4' -> [(64, 128, 8), (32, 256, 4)], the default first; None: the default grid."""
    if not text:
        configs = list(GRID)
    else:
        configs = []
        for item in text.split(","):
            parts = item.strip().split("x")
            if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
                raise SystemExit(f"relu2_fp8: --configs item {item!r} is not BLOCK_NxBLOCK_HxWARPS (e.g. 64x128x8)")
            bn, bh, w = map(int, parts)
            if bn & (bn - 1) or bh & (bh - 1) or w & (w - 1):
                raise SystemExit(f"relu2_fp8: --configs item {item!r}: Triton blocks and warps are powers of two")
            configs.append((bn, bh, w))
    return [DEFAULT] + [c for c in dict.fromkeys(configs) if c != DEFAULT]


def gbps(mode: str, n: int, h: int, ms: float) -> float:
    return BYTES_PER_ELEMENT[mode] * n * h / (ms * 1e-3) / 1e9


def table(rows: list[dict]) -> str:
    out = [f"{'call':6} {'config':>10} {'ms':>8} {'GB/s':>7} {'x default':>9}  output"]
    for r in rows:
        out.append(f"{r['mode']:6} {r['config']:>10} {r['ms']:8.4f} {r['gbps']:7.0f} {r['ratio']:9.3f}  "
                   + ("same" if r["same"] else "DIFFERS"))
    best = {}
    for r in rows:
        if r["same"] and (r["mode"] not in best or r["ms"] < best[r["mode"]]["ms"]):
            best[r["mode"]] = r
    out.append("best: " + "; ".join(f"{m} {r['config']} {r['ms']:.4f} ms ({r['ratio']:.3f}x)" for m, r in best.items()))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=49152, help="rows N (fast_1gpu: batch_tokens)")
    ap.add_argument("--hidden", type=int, default=3072, help="columns H (mlp_hidden)")
    ap.add_argument("--configs", default=None, help="BLOCK_NxBLOCK_HxWARPS,... (default: a grid of 16)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    configs = parse_configs(args.configs)
    if not torch.cuda.is_available():
        print("relu2_fp8: needs a CUDA GPU", file=sys.stderr)
        return 2
    from cuda_timing import median_cuda_ms

    from speedrun.kernels.relu2_fp8 import relu2_fp8, relu2_grad_fp8

    torch.manual_seed(0)
    n, h = args.tokens, args.hidden
    p = (torch.randn(n, h, device="cuda") * 0.7).bfloat16()
    g = (torch.randn(n, h, device="cuda") * 1e-3).bfloat16()
    scale_h, scale_d = torch.tensor([16.0], device="cuda"), torch.tensor([2.0**12], device="cuda")

    def call(mode, bn, bh, w):
        amax = torch.zeros(1, device="cuda")
        kw = dict(block_n=bn, block_h=bh, num_warps=w)
        if mode == "fwd":
            out = relu2_fp8(p, scale_h, amax, cols=False, **kw)[0], amax
        else:
            out = (*relu2_grad_fp8(g, p, scale_d, amax, h_scale=scale_h if mode == "grad_h" else None, **kw), amax)
        return [t.view(torch.uint8) if t.dtype.itemsize == 1 else t for t in out if t is not None]

    rows = []
    for mode in ("fwd", "grad", "grad_h"):
        reference = call(mode, *DEFAULT)
        base_ms = None
        for bn, bh, w in configs:
            same = all(torch.equal(a, b) for a, b in zip(call(mode, bn, bh, w), reference))
            ms = median_cuda_ms(lambda: call(mode, bn, bh, w), reps=30, warmup=3)
            base_ms = base_ms or ms
            rows.append(dict(mode=mode, config=f"{bn}x{bh}x{w}", ms=ms, gbps=gbps(mode, n, h, ms),
                             ratio=ms / base_ms, same=same))
    print(f"{torch.cuda.get_device_name()} | relu2 FP8 kernels | N {n:,} x H {h:,} | torch {torch.__version__}")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), tokens=n, hidden=h, rows=rows), f, indent=1)
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
