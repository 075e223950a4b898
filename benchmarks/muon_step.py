"""Muon's step alone (GPU) on a recipe's block matrices: the median of CUDA events over repeated `muon.step()` calls
on fixed random gradients, compiled as training compiles it, with lr and momentum changed every call as the
schedules change them. Each timed call is queued behind a sleeping kernel, so the events time the GPU's work, not
the host's launches: in a training step the host runs well ahead of the GPU. Uses only the package's public API,
so it times any tree's Muon:

    python benchmarks/muon_step.py [--recipe fast_1gpu] [--reps 50] [--inductor KEY=VALUE ...] [--json F]
    PYTHONPATH=path/to/other/tree python benchmarks/muon_step.py   # another tree's package

Prints one line: the recipe, the matrices and their groups, the median and minimum ms a step, the GPU kernels one
step launches (and how many distinct), and the first call's seconds on the host (the compiles: run it on empty
compile folders, TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR, for a fresh machine's figure). `--inductor` applies
Inductor settings to those compiles, to try a build without changing the package.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time

import torch

import speedrun
from speedrun.build import build_model, build_optimizers
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

SLEEP_CYCLES = 200_000_000  # about 0.1 s at an H100's clock: longer than the host takes to launch one Muon step


def parse_settings(items: list[str]) -> dict:
    """['combo_kernels=True', ...] -> {'combo_kernels': True, ...}: each value a Python literal."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            settings[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            sep = ""
        if not sep or not key.strip():
            raise SystemExit(f"muon_step: --inductor {item!r} is not KEY=VALUE with a Python literal (e.g. combo_kernels=True)")
    return settings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fast_1gpu")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls first (the compiles)")
    ap.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                    help="an Inductor setting (Python literal) for the compiles of the warm-up calls, e.g. combo_kernels=True")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    settings = parse_settings(args.inductor)
    if not torch.cuda.is_available():
        print("muon_step: needs a CUDA GPU", file=sys.stderr)
        return 2
    r = load_recipe(args.recipe)
    plan = make_plan(r)
    model = build_model(r, plan)
    _, muon = build_optimizers(model, r, compile_ns=plan.compile)
    params = [p for g in muon.param_groups for p in g["params"]]
    gen = torch.Generator(device=plan.device).manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen, device=plan.device, dtype=p.dtype) * 1e-3 for p in params]
    times, first_call_s = [], 0.0
    for i in range(args.warmup + args.reps):
        for p, g in zip(params, grads):
            p.grad = g.clone()  # a step may change its gradients in place
        for group in muon.param_groups:  # new values each call, as the schedules give: no compile may follow them
            group["lr"] = r.muon_lr * (1 - 0.5 * i / (args.warmup + args.reps))
            group["momentum"] = 0.85 + 0.1 * i / (args.warmup + args.reps)
        if i == 0:  # the compiles: timed on the host, with the settings asked for
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch._inductor.config.patch(settings):
                muon.step()
            torch.cuda.synchronize()
            first_call_s = time.perf_counter() - t0
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)  # the step's launches queue up behind it
        start.record()
        muon.step()
        end.record()
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(start.elapsed_time(end))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        muon.step()
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    print(f"package: {speedrun.__file__}")  # which tree's Muon was timed (PYTHONPATH)
    shapes = ", ".join(f"{len(g['params'])} x {tuple(g['params'][0].shape)}" for g in muon.param_groups)
    result = dict(recipe=args.recipe, device=torch.cuda.get_device_name(), params=len(params),
                  numel=sum(p.numel() for p in params), groups=shapes, reps=args.reps, inductor=settings,
                  first_call_s=first_call_s, kernels=len(kernels), distinct_kernels=len(set(kernels)),
                  median_ms=statistics.median(times), min_ms=min(times))
    print(f"muon step | {result['device']} | {args.recipe} | {len(params)} matrices ({result['numel']:,} entries;"
          f" groups by shape: {shapes}) | median {result['median_ms']:.3f} ms, min {result['min_ms']:.3f} ms"
          f" over {args.reps} | {len(kernels)} kernels ({len(set(kernels))} distinct) | first call {first_call_s:.1f} s{' with ' + str(settings) if settings else ''}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
