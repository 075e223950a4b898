"""Part 35, call B: the six backward FP8 matmuls of fast_1gpu (head at the full softmax, and one MLP) timed with
use_fast_accum False (main) and True, with each one's error against float32 arithmetic on the same FP8 operands.
Operands in the layouts main passes them (row-major first, column-major second). Run on the GPU: python3 fp8_accum.py"""
import sys

import torch

sys.path.insert(0, "benchmarks")
from cuda_timing import median_cuda_ms  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
N, D, H, V = 49152, 768, 3072, 50304
e4, e5 = torch.float8_e4m3fn, torch.float8_e5m2
gen = torch.Generator("cuda").manual_seed(0)


def f8(rows, cols, dtype, std=1.0):
    """A random (rows, cols) row-major FP8 tensor and its dequantising scale (values spread over the format)."""
    t = torch.randn(rows, cols, device="cuda", generator=gen) * std
    s = torch.finfo(dtype).max / (4 * t.abs().max())
    return (t * s).to(dtype), (1 / s).float()


def colmajor(t):  # the (cols, rows) column-major view of a fresh (rows, cols) row-major tensor
    return t.T.contiguous().T


g_head, sg = f8(N, V, e5)
x, sx = f8(N, D, e4)
w, sw = f8(V, D, e4)
g_mlp, sgm = f8(N, D, e5)
h_t, sh = f8(H, N, e4)
proj, sp = f8(D, H, e4)
d, sd = f8(N, H, e5)
fc, sf = f8(H, D, e4)
cases = {  # name: (a, b, scale_a, scale_b, out dtype)
    "head grad_x (N,V)@(V,D)": (g_head, colmajor(w), sg, sw, torch.bfloat16),
    "head grad_w (D,N)@(N,V)": (x.T.contiguous(), colmajor(g_head), sx, sg, torch.float32),
    "mlp grad_proj (D,N)@(N,H)": (g_mlp.T.contiguous(), h_t.T, sgm, sh, torch.float32),
    "mlp grad_h (N,D)@(D,H)": (g_mlp, colmajor(proj), sgm, sp, torch.bfloat16),
    "mlp grad_x (N,H)@(H,D)": (d, colmajor(fc), sd, sf, torch.bfloat16),
    "mlp grad_fc (H,N)@(N,D)": (d.T.contiguous(), colmajor(x), sd, sx, torch.float32),
}
print("| matmul | slow accum ms | fast accum ms | fast/slow | rel. error slow | rel. error fast |")
print("|---|---:|---:|---:|---:|---:|")
total = [0.0, 0.0]
for name, (a, b, sa, sb, dt) in cases.items():
    run = lambda fast: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=dt, use_fast_accum=fast)
    ms = [median_cuda_ms(lambda: run(f), reps=20) for f in (False, True)]
    ref = (a.float() * sa) @ (b.float() * sb)
    err = [((run(f).float() - ref).norm() / ref.norm()).item() for f in (False, True)]
    del ref
    total = [total[0] + ms[0], total[1] + ms[1]]
    print(f"| {name} | {ms[0]:.3f} | {ms[1]:.3f} | {ms[1] / ms[0]:.3f} | {err[0]:.2e} | {err[1]:.2e} |")
    torch.cuda.empty_cache()
print(f"| all six (the MLP's four once; fast_1gpu has 11 MLPs) | {total[0]:.3f} | {total[1]:.3f} | "
      f"{total[1] / total[0]:.3f} | | |")
