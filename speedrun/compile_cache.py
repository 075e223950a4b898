"""A portable torch.compile cache in one file (`speedrun train --compile-cache FILE`).

A fresh machine spends most of its launch compiling (experiments part 19: 114 of 132 s for `fast_1gpu` on an
H200). Inductor keeps what it compiled in a local folder that a new machine does not have; torch's "mega-cache"
(`torch.compiler.save_cache_artifacts` / `load_cache_artifacts`) packs those entries into bytes that another process
or machine can load before compiling, turning the compile into cache hits. This module keeps them in one file: a
JSON header line (what wrote it) and the packed artifacts. Entries only hit for the same torch, Triton and GPU:
a file from another setup is reported, compiled past and then rewritten, never trusted blindly.
"""

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speedrun.errors import TrainingError
from speedrun.files import write_atomic

# The package's folders whose code torch.compile traces. An edit there must change every compile cache's key: a custom
# op's registered backward (speedrun::fp8_head_loss) is traced into AOTAutograd's joint graph, but that cache keys on
# the graph before the trace, so an edited backward came back from the cache unedited (experiments part 36, on an H200
# with torch 2.11; tests/test_build.py shows it on CPU).
TRACED_SOURCE = ("model", "kernels", "optim")

MAGIC = "speedrun-compile-cache"
VERSION = 1
_packed = False  # torch packs a process's artifacts correctly once only (see CompileCache.save)


@functools.cache  # the model, the FP8 ops and Muon each ask before compiling: the files are read once a process
def source_fingerprint(package: Path = Path(__file__).parent, folders=TRACED_SOURCE) -> str:
    """A short hash of the Python files under `folders` of `package` (their paths and bytes)."""
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted((package / folder).rglob("*.py")):
            h.update(f.relative_to(package).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def key_caches_to_source(package: Path = Path(__file__).parent, folders=TRACED_SOURCE) -> str:
    """Put the traced source's fingerprint into every torch.compile cache key (Inductor's, AOTAutograd's, the
    autotuner's), after any tag set through TORCH_COMPILE_CACHE_KEY_TAG; before compiling. Returns the tag."""
    tag = f"speedrun-{source_fingerprint(package, folders)}"
    current = torch.compiler.config.cache_key_tag
    if tag not in current.split(":"):
        torch.compiler.config.cache_key_tag = f"{current}:{tag}" if current else tag
    return tag


def environment(device: torch.device) -> dict[str, str]:
    """What a cache entry depends on, beyond the code: the versions and the device it was compiled for."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"torch": torch.__version__, "triton": triton_version, "device": name}


def _artifact_keys(info) -> set[str]:
    return {f"{kind}:{key}" for kind, keys in (info.artifacts if info is not None else {}).items() for key in keys}


@dataclass
class CompileCache:
    path: Path
    device: torch.device
    loaded: set[str] = field(default_factory=set)  # artifact keys read from the file (empty: none, or a mismatch)
    message: str = ""  # what load() did, for the console and the run log

    def load(self) -> str:
        """Load the file's artifacts into this process's compile caches (before anything compiles). A missing file
        is a first run; a damaged one is a TrainingError; one from another torch, Triton or GPU is skipped."""
        if not self.path.exists():
            self.message = f"compile cache {self.path}: none yet, it is written when this run ends"
            return self.message
        try:
            raw = self.path.read_bytes()
            head, _, payload = raw.partition(b"\n")
            header = json.loads(head)
            ok = (isinstance(header, dict) and header.get("format") == MAGIC and header.get("version") == VERSION
                  and header.get("sha256") == hashlib.sha256(payload).hexdigest())
        except (OSError, ValueError) as e:
            raise TrainingError(f"compile cache {self.path}: cannot read it ({type(e).__name__}: {e}); "
                                f"delete it and the next run writes a fresh one") from None
        if not ok:
            raise TrainingError(f"compile cache {self.path}: not a speedrun compile cache, or damaged (header or "
                                f"checksum wrong); delete it and the next run writes a fresh one")
        here = environment(self.device)
        written = {k: header.get(k) for k in here}
        if written != here:
            diff = ", ".join(f"{k} {written[k]} (here {here[k]})" for k in here if written[k] != here[k])
            self.message = f"compile cache {self.path}: written for {diff}; compiling afresh, then rewriting it"
            return self.message
        info = torch.compiler.load_cache_artifacts(payload)
        if info is None:
            raise TrainingError(f"compile cache {self.path}: torch could not load its artifacts; delete it and "
                                f"the next run writes a fresh one")
        self.loaded = _artifact_keys(info)
        self.message = f"compile cache {self.path}: loaded {len(self.loaded)} artifacts ({len(raw) / 2**20:.1f} MiB)"
        return self.message

    @staticmethod
    def graph_counts() -> str:
        """How this process's compiled graphs came: from a cache, or compiled here (Inductor's counters)."""
        from torch._dynamo.utils import counters

        hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
        return f"compiled graphs: {hits} from the cache, {misses} compiled here"

    def save(self) -> str | None:
        """Write every artifact this process compiled or loaded, if it compiled anything the file lacks (a first
        run, a new shape, another setup). Returns what it did, or None when the file already had it all.

        Once a process: torch's packer appends each call's new entries to the last call's bytes, and loading keeps
        only the last call's entries of each kind (torch 2.11-2.13), so a second file would silently lack the first's.
        """
        global _packed
        if _packed:
            return f"compile cache {self.path}: not written (this process already wrote one; torch packs once)"
        _packed = True
        packed = torch.compiler.save_cache_artifacts()
        if packed is None:
            return None
        payload, info = packed
        keys = _artifact_keys(info)
        if not keys or keys <= self.loaded:
            return None
        header = dict(format=MAGIC, version=VERSION, **environment(self.device),
                      sha256=hashlib.sha256(payload).hexdigest())
        try:
            write_atomic(self.path, lambda f: (f.write(json.dumps(header).encode() + b"\n"), f.write(payload)))
        except OSError as e:  # a cache is an aid: the run itself has finished
            return f"compile cache {self.path}: not written ({type(e).__name__}: {e})"
        self.loaded = keys
        return f"compile cache {self.path}: wrote {len(keys)} artifacts ({len(payload) / 2**20:.1f} MiB)"
