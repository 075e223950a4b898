"""Muon's compiled graphs, compiled in a side process while the trainer compiles the model.

A fresh launch compiles one graph after another in one process: on a lent H200 (experiments part 37) the model's
forward and backward took 67 s, then Muon's Newton-Schulz and NorMuon graphs (one per matrix shape, two shapes) 8.7 s
more, in the first optimiser step. Those graphs do not depend on the model's, so a child process compiles them into
the same on-disk caches (Inductor's FX graph cache, Triton's) while this one compiles the model, and Muon's first step
finds them there. The child rebuilds Muon over parameters of the same shapes, dtypes and device, with the same
settings and compile-cache tag, so its cache keys are the trainer's. Should it be late or fail, the trainer compiles
the graphs itself as before: the side process can only save time.

    python -m speedrun.side_compile < spec.json   (what SideCompile starts; the spec is `muon_spec`'s)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from speedrun.optim.muon import Muon


def muon_spec(muon: Muon) -> dict:
    """What the child needs to build `muon` again: its settings, its parameters' shapes, dtypes and device, this
    rank's place, and the compile caches' key tag (set in this process, not in the environment)."""
    params = [p for g in muon.param_groups for p in g["params"]]
    return dict(settings=muon.settings, shapes=[list(p.shape) for p in params],
                dtypes=[str(p.dtype).removeprefix("torch.") for p in params], device=str(params[0].device),
                world_size=muon.world_size, rank=muon.rank, cache_key_tag=torch.compiler.config.cache_key_tag)


def compile_from_spec(spec: dict) -> Muon:
    """In the child: Muon again, over zeros of the spec's shapes, and its compiled graphs run once (so compiled)."""
    from speedrun.build import configure_compiler

    configure_compiler()
    torch.compiler.config.cache_key_tag = spec["cache_key_tag"]
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    params = [torch.nn.Parameter(torch.zeros(shape, dtype=getattr(torch, dtype), device=device))
              for shape, dtype in zip(spec["shapes"], spec["dtypes"])]
    settings = dict(spec["settings"], ns_dtype=getattr(torch, spec["settings"]["ns_dtype"]))
    muon = Muon(params, **settings)
    muon.world_size, muon.rank = spec["world_size"], spec["rank"]  # the shapes this rank orthogonalises
    muon.warm_compile()
    return muon


class SideCompile:
    """The child process: started at once, `finish` waits for it (a bounded time) before the timed steps."""

    def __init__(self, spec: dict):
        self.t0 = time.perf_counter()
        self.output = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if k != "TORCH_LOGS"}  # the trainer's logs are the ones asked for
        self.proc = subprocess.Popen([sys.executable, "-m", "speedrun.side_compile"], stdin=subprocess.PIPE,
                                     stdout=self.output, stderr=subprocess.STDOUT, env=env)
        self.proc.stdin.write(json.dumps(spec).encode())
        self.proc.stdin.close()

    def finish(self, wait_s: float = 60.0) -> str:
        """Wait for the child (at most `wait_s` more seconds, then stop it); one line on what it did."""
        try:
            rc = self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return f"Muon's graphs in a side process: stopped, still compiling after {self.elapsed():.0f}s"
        self.output.seek(0)
        lines = self.output.read().decode(errors="replace").strip().splitlines()
        self.output.close()
        if rc != 0:
            return (f"Muon's graphs in a side process: failed (exit {rc}: {lines[-1] if lines else 'no output'}); "
                    f"compiled in the first step instead")
        return f"Muon's graphs in a side process: {lines[-1] if lines else 'done'}, {self.elapsed():.1f}s after its start"

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_side_compile(muon: Muon) -> SideCompile | None:
    """A side process for `muon`'s compiled graphs, where it can help: compiled Newton-Schulz on a GPU."""
    if not muon.settings["compile_ns"] or not next(p for g in muon.param_groups for p in g["params"]).is_cuda:
        return None
    return SideCompile(muon_spec(muon))


def main() -> int:
    t0 = time.perf_counter()
    compile_from_spec(json.loads(sys.stdin.read()))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    print(f"compiled in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
