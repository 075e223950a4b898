"""Which way of writing the transposed FP8 copy is exact on the GPU (part 18)? The shipped kernel's e5m2 transposed
store was wrong on an H200 (Triton 3.6): 0.625 of the values equal. Variants, each against the PyTorch reference:
  store:   the shipped kernel (cast, then store through transposed addresses)
  bytes:   cast once in the load layout, bitcast to uint8, store the bytes through transposed addresses
  reload:  a second, transposed tile: load p and g through transposed addresses, cast, store contiguously
and each one's time at fast_1gpu's size (49152 x 3072)."""
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

from speedrun.kernels.relu2_fp8 import relu2_fp8, relu2_fp8_reference, relu2_grad_fp8, relu2_grad_fp8_reference


@triton.jit
def _k(g_ptr, p_ptr, y_ptr, yt_ptr, scale_ptr, N, H, FMAX: tl.constexpr, GRAD: tl.constexpr, OUT: tl.constexpr,
       MODE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
    pid_n, pid_h = tl.program_id(0), tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    mask = (rows[:, None] < N) & (cols[None, :] < H)
    offs = rows[:, None] * H + cols[None, :]
    s = tl.load(scale_ptr)
    r = tl.maximum(tl.load(p_ptr + offs, mask=mask, other=0.0).to(tl.float32), 0.0)
    v = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32) * 2.0 * r if GRAD else r * r
    q = tl.clamp(v * s, -FMAX, FMAX).to(OUT)
    if MODE == 1:  # bytes
        b = q.to(tl.uint8, bitcast=True)
        tl.store(y_ptr + offs, b, mask=mask)
        tl.store(yt_ptr + cols[None, :] * N + rows[:, None], b, mask=mask)
    else:  # reload
        tl.store(y_ptr + offs, q, mask=mask)
        toffs = rows[None, :] * H + cols[:, None]  # (BLOCK_H, BLOCK_N) tile of p, read through transposed addresses
        tmask = (rows[None, :] < N) & (cols[:, None] < H)
        rt = tl.maximum(tl.load(p_ptr + toffs, mask=tmask, other=0.0).to(tl.float32), 0.0)
        vt = tl.load(g_ptr + toffs, mask=tmask, other=0.0).to(tl.float32) * 2.0 * rt if GRAD else rt * rt
        tl.store(yt_ptr + cols[:, None] * N + rows[None, :], tl.clamp(vt * s, -FMAX, FMAX).to(OUT), mask=tmask)


def variant(mode, g, p, scale, dtype):
    N, H = p.shape
    y, yt = torch.empty(N, H, dtype=dtype, device="cuda"), torch.empty(H, N, dtype=dtype, device="cuda")
    ya, yta = (y.view(torch.uint8), yt.view(torch.uint8)) if mode == 1 else (y, yt)
    out = tl.float8e5 if dtype == torch.float8_e5m2 else tl.float8e4nv
    _k[(triton.cdiv(N, 64), triton.cdiv(H, 128))](p if g is None else g, p, ya, yta, scale, N, H,
                                                   FMAX=float(torch.finfo(dtype).max), GRAD=g is not None, OUT=out,
                                                   MODE=mode, BLOCK_N=64, BLOCK_H=128, num_warps=8)
    return y, yt


torch.manual_seed(0)
print("| grad | N | variant | rows equal | transposed equal | us |")
for N in (4103, 49152):
    p = (torch.randn(N, 3072, device="cuda") * 2).bfloat16()
    g = (torch.randn(N, 3072, device="cuda") * 1e-4).bfloat16()
    for grad in (False, True):
        scale = torch.tensor([2.0**16 if grad else 16.0], device="cuda")
        dtype = torch.float8_e5m2 if grad else torch.float8_e4m3fn
        ry, ryt, _ = relu2_grad_fp8_reference(g, p, scale) if grad else relu2_fp8_reference(p, scale)
        runs = {"store": (lambda: relu2_grad_fp8(g, p, scale, torch.zeros(1, device="cuda"))) if grad
                else (lambda: relu2_fp8(p, scale, torch.zeros(1, device="cuda"))),
                "bytes": lambda: variant(1, g if grad else None, p, scale, dtype),
                "reload": lambda: variant(2, g if grad else None, p, scale, dtype),
                "rows+torch.t": (lambda: (lambda y: (y, y.t().contiguous()))(relu2_grad_fp8(
                    g, p, scale, torch.zeros(1, device="cuda"))[0])) if grad else
                (lambda: (lambda y: (y, y.t().contiguous()))(relu2_fp8(p, scale, None, cols=False)[0]))}
        for name, fn in runs.items():
            y, yt = fn()
            eq = (y.float() == ry.float()).float().mean().item()
            eqt = (yt.view(torch.uint8) == ryt.view(torch.uint8)).float().mean().item()
            us = do_bench(fn) * 1000
            print(f"| {grad} | {N} | {name} | {eq:.6f} | {eqt:.6f} | {us:.1f} |", flush=True)
