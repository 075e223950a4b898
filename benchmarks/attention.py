"""FlexAttention kernel options at the track's shape: forward + backward time of one attention layer per config.

    python benchmarks/attention.py [--shard /tmp/corpus/corpus_train_000000.bin] [--windows 7,14] [--budget 150]

One row of 49,152 tokens (documents from the shard's first tokens, else synthetic ~1,000-token documents), 6 heads
of 128, bf16, the recipe's document-causal block mask at each long window (in blocks of 128). Each config is its
own compiled flex_attention; its output and gradients are compared with the default config's (the math is the
same, only tiling changes). The table is printed last; configs left when --budget seconds have passed are skipped.
Its first column is each config's first forward + backward, which compiles both kernels: run on empty compile
folders (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR), it is what the attention's kernels add to a fresh launch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from cuda_timing import median_cuda_ms

from speedrun.data.shards import read_shard
from speedrun.model.attention import BlockLists, flex_block_mask

# name -> kernel_options (fwd_* / bwd_* apply to one pass; see torch/_inductor/kernel/flex/flex_attention.py)
CONFIGS = {
    "default": {},
    "bwd64x64_w4s3": {"bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 64, "bwd_BLOCK_M2": 64, "bwd_BLOCK_N2": 64, "bwd_num_warps": 4, "bwd_num_stages": 3},
    "bwd64x128_w4s3": {"bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128, "bwd_BLOCK_N2": 64, "bwd_num_warps": 4, "bwd_num_stages": 3},
    "bwd32x128_w4s3": {"bwd_BLOCK_M1": 32, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128, "bwd_BLOCK_N2": 32, "bwd_num_warps": 4, "bwd_num_stages": 3},
    "bwd64x128_w8s2": {"bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128, "bwd_BLOCK_N2": 64, "bwd_num_warps": 8, "bwd_num_stages": 2},
    "rows_safe": {"ROWS_GUARANTEED_SAFE": True},
    "fwd128x128_w8s2": {"fwd_BLOCK_M": 128, "fwd_BLOCK_N": 128, "fwd_num_warps": 8, "fwd_num_stages": 2},
    "fwd64x64_w4s3": {"fwd_BLOCK_M": 64, "fwd_BLOCK_N": 64, "fwd_num_warps": 4, "fwd_num_stages": 3},
    "fwd128x64_w8s4": {"fwd_BLOCK_M": 128, "fwd_BLOCK_N": 64, "fwd_num_warps": 8, "fwd_num_stages": 4},
    # Hopper's tensor memory accelerator for the loads (off by default on CUDA in torch 2.11); slower on an H200
    # (part 23: fwd+bwd 2.387 / 2.965 ms, forward-only TMA 2.091 / 2.780, against the default's 2.065 / 2.648)
    "tma": {"USE_TMA": True},
    "fwd_tma": {"fwd_USE_TMA": True},
}


def row_tokens(shard: str | None, T: int) -> torch.Tensor:
    if shard:
        try:
            return torch.from_numpy(read_shard(shard)[:T].astype("int64"))
        except Exception as e:  # noqa: BLE001 - fall back to synthetic documents, and say so
            print(f"({shard}: {e}; synthetic documents instead)")
    g = torch.Generator().manual_seed(0)
    toks = torch.randint(0, 50256, (T,), generator=g)
    toks[torch.randint(0, T, (T // 1000,), generator=g)] = 50256
    toks[0] = 50256
    return toks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shard", default="/tmp/corpus/corpus_train_000000.bin")
    ap.add_argument("--windows", default="7,14", help="long windows in blocks of 128 (the short layers use half)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--budget", type=float, default=150.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("attention: needs a CUDA GPU", file=sys.stderr)
        return 2
    from torch.nn.attention.flex_attention import flex_attention

    t_start = time.time()
    T, H, D, dev = 49152, 6, 128, torch.device("cuda")
    lists = BlockLists.build(row_tokens(args.shard, T).to(dev), 128)
    windows = [int(w) for w in args.windows.split(",")]
    masks = {w: flex_block_mask(lists, torch.tensor(w, dtype=torch.int32, device=dev)) for w in windows}
    g = torch.Generator(device=dev).manual_seed(0)
    # the model's layout: one (1, T, 3H, D) projection, each of q, k, v a (1, H, T, D) view of it
    qkv = torch.nn.functional.rms_norm(torch.randn(1, T, 3 * H, D, device=dev, generator=g), (D,)).bfloat16()
    q, k, v = (t.transpose(1, 2) for t in qkv.chunk(3, dim=2))
    dy = torch.randn(1, H, T, D, device=dev, generator=g).bfloat16()
    reference, rows = {}, []
    for name in args.configs.split(","):
        if time.time() - t_start > args.budget:
            print(f"{name}: skipped (budget)")
            continue
        opts = CONFIGS[name]
        torch._dynamo.reset()  # one code object for every config: without a reset dynamo recompiles, then runs eager
        attend = torch.compile(lambda q, k, v, m, o=opts: flex_attention(q, k, v, block_mask=m, scale=0.12,
                                                                          kernel_options=o or None), dynamic=False)
        row = dict(config=name, options=opts)
        try:
            for w, m in masks.items():
                qq, kk, vv = (t.detach().requires_grad_() for t in (q, k, v))
                t_first = time.perf_counter()
                y = attend(qq, kk, vv, m)
                y.backward(dy)
                torch.cuda.synchronize()
                # the config's first call compiles its forward and backward kernels (on empty compile folders, the
                # share of a launch that the attention's kernels take); later windows reuse them
                row.setdefault("first_call_s", round(time.perf_counter() - t_first, 2))
                out = [t.detach().clone() for t in (y, qq.grad, kk.grad, vv.grad)]  # .grad accumulates in place
                if name == "default":
                    reference[w] = out
                else:
                    row[f"max_diff_w{w}"] = max(float((a.float() - b.float()).abs().max()) for a, b in zip(out, reference[w]))
                fwd = median_cuda_ms(lambda: attend(q, k, v, m), args.iters)
                step = lambda: attend(qq, kk, vv, m).backward(dy)
                row[f"fwd_ms_w{w}"] = fwd
                row[f"fwd_bwd_ms_w{w}"] = median_cuda_ms(step, args.iters)
        except Exception as e:  # noqa: BLE001 - a config the compiler rejects is reported, the rest go on
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{torch.cuda.get_device_name()} | torch {torch.__version__} | T={T}, {H} heads x {D}, bf16 | median of "
          f"{args.iters} | {time.time() - t_start:.0f}s")
    head = "".join(f"{f'fwd w{w}':>10}{f'fwd+bwd w{w}':>14}{f'diff w{w}':>10}" for w in windows)
    print(f"{'config':<18}{'first call s':>13}{head}")
    for row in rows:
        cells = "".join(f"{row.get(f'fwd_ms_w{w}', float('nan')):>10.3f}{row.get(f'fwd_bwd_ms_w{w}', float('nan')):>14.3f}"
                        f"{row.get(f'max_diff_w{w}', 0.0):>10.2e}" for w in windows)
        print(f"{row['config']:<18}{row.get('first_call_s', float('nan')):>13.2f}{cells}"
              + (f"  {row['error']}" if "error" in row else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
