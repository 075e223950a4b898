"""Step-time benchmark: build a recipe, compile, run K training steps, print a table.

    python benchmarks/step_time.py --recipe record21_1gpu --steps 60 [--shards 'data/*.bin'] [--profile] [--power]

Tokens are synthetic (random ids, an <|endoftext|> every ~1000 tokens, as the record-21 program's own timing
used) unless --shards is given. Steps are timed with CUDA events after `--warmup` untimed steps; the table
gives the median and mean step time, tokens/s, model TFLOP/s and peak memory, at the attention windows of the
first steps of a run (`--at-step 0`, what the record's early step_avg shows) and of its last step.
Model FLOPs = 6 x (matmul parameters) per token + 12 x head_dim x heads x (attended key-query pairs) per
attention layer (forward 4·d per pair, backward 8·d).
--power also reads the GPU's power and SM clock while each window is timed (benchmarks/gpu_power.py): a GPU at its
power cap runs every kernel slower when the step draws more, so energy a step tells apart changes of equal time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from speedrun.build import build_model, build_optimizers, compiled_runner
from speedrun.data.stream import BatchStream
from speedrun.data.tokenizer import EOT
from speedrun.model.attention import document_ids
from speedrun.optim.schedule import long_window_blocks
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.step import format_phases, train_step, warmup_and_restore


def synthetic_tokens(n: int, vocab: int, mean_doc: int, seed: int) -> torch.Tensor:
    g = np.random.default_rng(seed)
    toks = g.integers(0, EOT, size=n, dtype=np.int64)
    pos = 0
    while pos < n:
        toks[pos] = EOT
        pos += int(g.integers(mean_doc // 2, mean_doc * 3 // 2))
    return torch.from_numpy(toks)


def attended_pairs(tokens: torch.Tensor, window_blocks: int, block: int) -> int:
    """Key-query pairs the mask allows: k <= q, same document, block distance < window."""
    T = tokens.numel()
    docs = document_ids(tokens)
    pos = torch.arange(T)
    # first position of each position's document
    is_start = torch.ones(T, dtype=torch.bool)
    is_start[1:] = docs[1:] != docs[:-1]
    start = torch.cummax(torch.where(is_start, pos, torch.zeros_like(pos)), 0).values
    lo = torch.maximum(start, (pos // block - window_blocks + 1).clamp_min(0) * block)
    return int((pos - lo + 1).sum())


def model_flops(r, model, tokens_list, window_blocks: int) -> float:
    groups = model.param_groups()
    matmul_params = sum(p.numel() for p in groups["muon"]) + sum(p.numel() for p in groups["head"])
    n_tok = sum(t.numel() for t in tokens_list)
    flops = 6 * matmul_params * n_tok
    attn_layers = r.num_layers - len(r.no_attn_layers)
    d = r.head_dim * r.num_heads
    for t in tokens_list:
        long_pairs = attended_pairs(t.cpu(), window_blocks, r.attn_block_size)
        short_pairs = attended_pairs(t.cpu(), max(1, window_blocks // 2), r.attn_block_size)
        n_long = sum(1 for i, c in enumerate(r.window_pattern) if c == "L" and i not in r.no_attn_layers)
        flops += 12 * d * (n_long * long_pairs + (attn_layers - n_long) * short_pairs)
    return flops


def time_steps(runner, optimizers, r, plan, batches_fn, window, steps: int, at_step: int = 0) -> list[float]:
    """CUDA-event times of `steps` training steps, each run as step `at_step` of the schedule (a sampled head's rows
    and the MTP weights follow it; the weights keep training, which does not change the work)."""
    times = []
    for i in range(steps):
        batches = batches_fn(i)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        train_step(runner, batches, optimizers, at_step, window, r, plan.world_size)
        end.record()
        times.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in times]


PROFILED_STEPS = 5
# Kernel families by name, first match wins: where a step's GPU time goes (the profile's self CUDA times). cuBLAS's
# nvjet kernels with FP8 operands start q (e4m3) or r (e5m2): on an H200 they summed to aten::_scaled_mm's time.
CATEGORIES = [("loss kernel", r"_softcap_ce"), ("attention (flex templates)", r"flex|triton_tem"),
              # the FP8 MLP's ReLU² + cast kernel (ours): element-wise, not a matmul, though its name says fp8
              ("fp8 casts (ReLU² kernel)", r"_relu2_fp8"), ("fp8 matmul", r"nvjet_sm\d+_[qr]|f8|e4m3|e5m2|fp8"),
              ("matmul", r"gemm|nvjet|cutlass|xmma|sm90|sm100"),
              ("optimizer foreach/adam", r"multi_tensor|foreach|adam"), ("fused elementwise/reductions",
              r"^triton_(poi|red|per)"), ("copies/fills", r"copy|memcpy|memset|fill|cat")]


def device_kernels(events) -> list[tuple[str, float, str]]:
    """(full kernel name, GPU ms per step, family) of every device-side kernel, longest first. Only device-side
    kernel events count: a CPU op (aten::mm) and an annotation (Optimizer.step#Muon.step) repeat the time of the
    kernels under them."""
    import re

    out = []
    for e in events:
        if str(getattr(e, "device_type", "")).split(".")[-1] != "CUDA" or e.key.startswith(("ProfilerStep", "Optimizer.")):
            continue
        ms = getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) / 1000 / PROFILED_STEPS
        out.append((e.key, ms, next((c for c, pat in CATEGORIES if re.search(pat, e.key, re.I)), "other")))
    return sorted(out, key=lambda k: -k[1])


def kernel_categories(kernels: list[tuple[str, float, str]], step_ms: float | None = None) -> str:
    """Per-step GPU ms of each kernel family (CATEGORIES) and their total, from `device_kernels`: what a step's
    kernels keep busy. step_ms (the unprofiled median step at that window): also the time the GPU waits for work,
    launches and host code, which fewer launches (CUDA graphs) could take back and faster kernels cannot."""
    totals: dict[str, float] = {}
    for _, ms, family in kernels:
        totals[family] = totals.get(family, 0.0) + ms
    lines = [f"{'kernel family':<30} {'ms/step':>8}"] + [f"{k:<30} {v:>8.2f}" for k, v in
                                                       sorted(totals.items(), key=lambda kv: -kv[1])]
    busy = sum(totals.values())
    idle = [] if step_ms is None else [f"{'GPU idle (median step - busy)':<30} {step_ms - busy:>8.2f}"]
    return "\n".join(lines + [f"{'total (GPU busy)':<30} {busy:>8.2f}", *idle])


def kernel_list(kernels: list[tuple[str, float, str]], top: int = 25) -> str:
    """The longest kernels with their whole names (Inductor names a kernel after every op it fused, and the
    profiler's table cuts them at its column width)."""
    return "\n".join([f"{'ms/step':>8}  {'family':<28} kernel"]
                     + [f"{ms:>8.2f}  {family:<28} {name}" for name, ms, family in kernels[:top]])


def power_row(summary: dict | None, steps: int) -> dict | None:
    """A timed window's power figures (gpu_power.summarize) with its energy a step: mean power x wall time / steps."""
    if summary is None:
        return None
    return dict(summary, joules_per_step=summary["mean_w"] * summary["seconds"] / steps)


def power_table(rows: list[dict]) -> str:
    """The --power table: one line a timed window."""
    lines = [f"{'at step':>8} {'median W':>9} {'mean W':>7} {'SM MHz':>7} {'at power cap':>13} {'J/step':>7} "
             f"{'samples':>8}"]
    for row in rows:
        p = row.get("power")
        lines.append(f"{row['at_step']:>8} " + ("no samples" if p is None else
                     f"{p['median_w']:>9.0f} {p['mean_w']:>7.0f} {p['median_sm_mhz']:>7.0f} "
                     f"{p['power_capped']:>12.0%} {p['joules_per_step']:>7.1f} {p['samples']:>8}"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="record21_1gpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--shards", default=None, help="train shards instead of synthetic tokens")
    ap.add_argument("--at-step", type=int, action="append", default=None,
                    help="schedule step whose attention window to time at (repeatable; default: 0 and the last)")
    ap.add_argument("--profile", action="store_true", help="profile 5 steps at the last window: the longest kernels "
                    "by whole name, the kernel families, and with --json every kernel")
    ap.add_argument("--power", action="store_true", help="read the GPU's power and SM clock during each timed window "
                    "(nvidia-smi, every 50 ms): median W, median MHz, the share of samples at the power cap, J a step")
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("step_time: needs a CUDA GPU", file=sys.stderr)
        return 2
    r = load_recipe(args.recipe, args.overrides)
    plan = make_plan(r)
    for note in plan.notes:  # e.g. FP8 asked for on a GPU without it: the figures are then not of it
        print(f"note: {note}")
    torch.cuda.set_device(plan.device)
    model = build_model(r, plan)
    optimizers = build_optimizers(model, r, compile_ns=plan.compile)
    runner = compiled_runner(model, plan)
    accum = r.grad_accum_steps(1)

    if args.shards:
        stream = BatchStream(args.shards, r.batch_tokens, r.seq_len, loop=True, device=plan.device)
        batches_fn = lambda i: stream.next_step()
    else:
        pool = [synthetic_tokens(r.seq_len + 1, r.vocab_size, 1000, seed=s).to(plan.device) for s in range(4)]
        batches_fn = lambda i: [(pool[(i + m) % 4][:-1].int(), pool[(i + m) % 4][1:].clone()) for m in range(accum)]

    if args.power:
        from gpu_power import PowerSampler  # benchmarks/, the script's folder

        uuid = str(torch.cuda.get_device_properties(plan.device).uuid)
        power_command = PowerSampler.for_device(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}").command
        power_sampler = lambda: PowerSampler(power_command)
        if power_command is None:
            print("note: --power: nvidia-smi does not answer here; no power figures")
    else:
        power_sampler = contextlib.nullcontext
    t0 = time.time()
    at_steps = args.at_step or [0, r.steps]
    windows = {s: long_window_blocks(s, r.steps, r.window_ramp_tokens, r.attn_block_size) for s in at_steps}
    # The window as the trainer passes it (GPT.window): one device tensor per window, made once.
    wt = {s: model.window(s) for s in at_steps}
    first = warmup_and_restore(runner, optimizers, r, plan, wt[at_steps[0]])
    compile_s = time.time() - t0
    rows = []
    for s, w in windows.items():
        time_steps(runner, optimizers, r, plan, batches_fn, wt[s], args.warmup, s)
        torch.cuda.reset_peak_memory_stats()
        with power_sampler() as power:
            ms = time_steps(runner, optimizers, r, plan, batches_fn, wt[s], args.steps, s)
        sample = [b[0] for b in batches_fn(0)]
        flops = model_flops(r, model, sample, w)
        med = statistics.median(ms)
        rows.append(dict(at_step=s, window_tokens=w * r.attn_block_size, median_ms=med, mean_ms=statistics.mean(ms),
                         min_ms=min(ms), max_ms=max(ms), tokens_per_s=r.batch_tokens / med * 1000,
                         tflops=flops / (med / 1000) / 1e12,
                         peak_alloc_gib=torch.cuda.max_memory_allocated() / 2**30,
                         peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30))
        if args.power:
            rows[-1]["power"] = power_row(power.summary(), args.steps)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        w = wt[at_steps[-1]]
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            time_steps(runner, optimizers, r, plan, batches_fn, w, PROFILED_STEPS, at_steps[-1])
        events = prof.key_averages()
        print(events.table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=90))
        kernels = device_kernels(events)
        print(kernel_list(kernels))
        print(kernel_categories(kernels, rows[-1]["median_ms"]))
    changed = f" ({', '.join(f'--set {o}' for o in args.overrides)})" if args.overrides else ""
    compiled = "on" if plan.compile else "off"
    print(f"\n{torch.cuda.get_device_name()} | recipe {r.name}{changed} | compile {compiled} | "
          f"{r.batch_tokens:,} tokens/step ({accum} x {r.seq_len:,}) | data {'shards' if args.shards else 'synthetic'} | "
          f"compile + warm-up {compile_s:.0f}s (first step: {format_phases(first)}) | torch {torch.__version__}")
    print(f"{'at step':>8} {'window':>7} {'median ms':>10} {'mean ms':>8} {'min ms':>7} {'tok/s':>10} "
          f"{'TFLOP/s':>8} {'peak alloc GiB':>15} {'reserved GiB':>13}")
    for row in rows:
        print(f"{row['at_step']:>8} {row['window_tokens']:>7} {row['median_ms']:>10.2f} {row['mean_ms']:>8.2f} "
              f"{row['min_ms']:>7.2f} {row['tokens_per_s']:>10,.0f} {row['tflops']:>8.1f} "
              f"{row['peak_alloc_gib']:>15.2f} {row['peak_reserved_gib']:>13.2f}")
    if args.power:
        print(power_table(rows))
    if args.json:
        out = dict(device=torch.cuda.get_device_name(), recipe=r.name, overrides=args.overrides, compile=compiled,
                   compile_s=compile_s, first_step=first, rows=rows)
        if args.profile:  # every kernel of the profiled steps, whole names, at the last window timed
            out["kernels"] = [dict(name=n, ms_per_step=ms, family=f) for n, ms, f in kernels]
            out["gpu_busy_ms_per_step"] = sum(ms for _, ms, _ in kernels)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
