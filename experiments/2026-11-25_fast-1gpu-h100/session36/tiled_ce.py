"""Part 36: the loss kernel's gradient in both layouts (tiled kernel) against main's row kernel + Inductor's transposed
copy, at fast_1gpu's shapes: 49,152 tokens, the full head (50,304 rows) and the sampled one (12,288), two extra
targets, e5m2 output. Median ms (CUDA events); checks that each config's gradient and its transpose match.

    python experiments/2026-11-25_fast-1gpu-h100/session36/tiled_ce.py OUT.json
"""

import json
import sys

import torch

sys.path.insert(0, "benchmarks")
from cuda_timing import median_cuda_ms  # noqa: E402

from speedrun.kernels.softcap_ce import softcap_cross_entropy_with_grad, softcap_cross_entropy_with_grads  # noqa: E402
from speedrun.model.mtp import mtp_targets  # noqa: E402

N, CAP, DIV, E5M2 = 49152, 30.0, 7.5, torch.float8_e5m2
CONFIGS = [(32, 128, 4), (32, 256, 8), (32, 64, 4), (64, 128, 8), (16, 256, 4), (32, 128, 8)]
transpose = torch.compile(lambda g: g.t().contiguous(), dynamic=False)
results = {}
for V in (50304, 12288):
    torch.manual_seed(0)
    logits = (torch.randn(N, V, device="cuda") * 10).bfloat16()
    targets = torch.randint(0, V, (N,), device="cuda")
    kw = dict(extra=mtp_targets(targets, 2), extra_weights=torch.tensor([0.5, 0.25], device="cuda"))
    scale = 10.0 / N

    def main_path():
        losses, g = softcap_cross_entropy_with_grad(logits, targets, CAP, DIV, scale, E5M2, **kw)
        return losses, g, transpose(g)

    row = {"kernel": median_cuda_ms(lambda: softcap_cross_entropy_with_grad(logits, targets, CAP, DIV, scale, E5M2,
                                                                            **kw)),
           "kernel+transpose": median_cuda_ms(main_path)}
    want_losses, want_g, want_t = main_path()
    for bn, bv, w in CONFIGS:
        run = lambda: softcap_cross_entropy_with_grads(logits, targets, CAP, DIV, scale, E5M2, bn, bv, w, **kw)
        losses, g, g_t = run()
        same_t = torch.equal(g_t.view(torch.uint8), g.t().contiguous().view(torch.uint8))
        differ = (g.view(torch.uint8) != want_g.view(torch.uint8)).float().mean().item()
        row[f"tiled {bn}x{bv} w{w}"] = median_cuda_ms(run)
        row[f"tiled {bn}x{bv} w{w} check"] = dict(transposed=same_t, loss_diff=(losses - want_losses).abs().max().item(),
                                                   e5m2_entries_differing=differ)
    results[V] = row
    del logits
print(f"{'V':>6} {'path':<22} {'ms':>7}")
for V, row in results.items():
    for k, v in row.items():
        if not k.endswith("check"):
            print(f"{V:>6} {k:<22} {v:>7.3f}  {row.get(k + ' check', '')}")
best = min(CONFIGS, key=lambda c: results[50304][f"tiled {c[0]}x{c[1]} w{c[2]}"] + results[12288][f"tiled {c[0]}x{c[1]} w{c[2]}"])
print("best (full + sampled):", best)
json.dump(dict(results={str(k): v for k, v in results.items()}, best=best), open(sys.argv[1], "w"), indent=1)
