"""The machine this process runs on: its usable CPU cores and its CPU's model (compile time, so a launch, follows
them; tokenizing spreads over the cores)."""

import contextlib
import os
import platform
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may use (containers, taskset), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_description() -> str:
    """'<model name>, N usable cores', as run logs record it."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or 'unknown'}, {usable_cores()} usable cores"
