"""Median wall time of a CUDA callable, for the benchmarks: CUDA events around each call, after warm-up calls."""

from __future__ import annotations

import statistics
from typing import Callable

import torch


def median_cuda_ms(fn: Callable[[], object], reps: int = 20, warmup: int = 3) -> float:
    """Median over `reps` timed calls of fn (milliseconds), after `warmup` untimed calls (compile, autotune)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
