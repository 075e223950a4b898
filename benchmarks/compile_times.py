"""Where a launch's compile time went, from torch's structured trace: each compiled graph, and the Triton kernels that
took longest to compile.

    TORCH_TRACE=/tmp/trace speedrun train ...        # any run; torch writes its structured log there
    python benchmarks/compile_times.py /tmp/trace [--top 15]

torch.compile logs one `compilation_metrics` record per compiled frame, and a `bwd_compilation_metrics` record when
its backward graph compiles (at the first backward pass). Each record has
the graph's compile times and, on a GPU, the 25 Triton kernels of that graph that took the longest to compile in
Inductor's worker processes (`triton_kernel_compile_times_us`). A fresh launch waits on those workers after the
graph's code generation (TorchDynamo's `async_compile.wait`). The kernel table here sums over the whole run: when
one kernel takes most of the wait on its own, more workers cannot help, and that kernel is the one to simplify.
On a CPU, Inductor writes C++ instead of Triton, so the kernel table is empty.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KINDS = {"compilation_metrics": "forward", "bwd_compilation_metrics": "backward"}


def compilation_records(trace_dir: str | Path) -> list[dict]:
    """Every compilation record (frame and backward) in the trace folder's logs, in the order torch wrote them, each
    with "pass": "forward" or "backward" added."""
    files = sorted(Path(trace_dir).glob("*.log")) if Path(trace_dir).is_dir() else [Path(trace_dir)]
    if not files:
        raise FileNotFoundError(f"{trace_dir}: no torch trace logs (*.log) here; was TORCH_TRACE set to it?")
    records = []
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            at = line.find('] {"')
            if at < 0:
                continue
            key = line[at + 4: line.find('"', at + 4)]
            if key in KINDS:
                records.append({**json.loads(line[at + 2:])[key], "pass": KINDS[key]})
    return records


def kernel_times(records: list[dict]) -> list[tuple[str, float]]:
    """(kernel name, seconds to compile) from every record's top kernels, longest first."""
    out = []
    for r in records:
        listed = r.get("triton_kernel_compile_times_us")
        for name, us in json.loads(listed) if listed else []:
            out.append((name, us / 1e6))
    return sorted(out, key=lambda k: -k[1])


def _s(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def report(records: list[dict], top: int = 15) -> str:
    lines = [f"{'compile id':<11} {'pass':<9} {'function':<24} {'nodes':>6} {'frame s':>8} {'inductor s':>10} "
             f"{'codegen s':>9}"]
    for r in records:
        lines.append(f"{str(r.get('compile_id')):<11} {r['pass']:<9} {str(r.get('co_name') or '')[:24]:<24} "
                     f"{r.get('graph_node_count') or 0:>6} "
                     f"{_s(r.get('entire_frame_compile_time_s')):>8} {_s(r.get('inductor_compile_time_s')):>10} "
                     f"{_s(r.get('code_gen_time_s')):>9}")
    kernels = kernel_times(records)
    if not kernels:
        return "\n".join(lines + ["", "no Triton kernel compile times in these records (a CPU run, or none compiled)"])
    total = sum(s for _, s in kernels)
    lines += ["", f"Triton kernels, longest to compile ({len(kernels)} listed, {total:.1f} s of worker time together):",
              f"{'s':>7}  kernel"]
    lines += [f"{s:>7.2f}  {name}" for name, s in kernels[:top]]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", help="the TORCH_TRACE folder (or one of its .log files)")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    try:
        records = compilation_records(args.trace)
    except (OSError, json.JSONDecodeError) as e:
        print(f"compile_times: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"compile_times: {args.trace}: no compilation_metrics records (nothing was compiled?)", file=sys.stderr)
        return 2
    print(report(records, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
