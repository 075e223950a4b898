"""Shared fixtures for the speedrun tests.

`shared/` (specs, tokenizer cache, corpus) lives beside the repository: tests that need it take the
`shared_dir` fixture, which skips cleanly when the folder is absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speedrun.data.shards import write_shard

# A shell starts a background job (`pytest &`, `nohup ... &`) with SIGINT ignored, and every child inherits that: the
# tests of Ctrl-C would then see runs that rightly keep it ignored. They test a foreground process's Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
# recipe overrides for a model small enough for CPU tests (a few seconds a run); modules add their own on top
SMALL = dict(model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128, seq_len=256, val_seq_len=256,
             window_ramp_tokens=256, batch_tokens=256)


@pytest.fixture
def make_shard(tmp_path):
    """Factory: make_shard(tokens, name="shard_000000.bin", folder=tmp_path) -> Path of a written shard."""

    def make(tokens, name: str = "shard_000000.bin", folder: str | os.PathLike | None = None) -> Path:
        folder = tmp_path if folder is None else Path(folder)
        return write_shard(folder / name, np.asarray(tokens))

    return make


def slow_left_out(item_path: Path, item_is_slow: bool, named: list[Path], markexpr: str) -> bool:
    """Whether a plain run leaves a test out: a test marked slow, unless `-m` chose the tests or the test's own file
    (or the test itself) was named on the command line, so that `pytest tests/test_x.py::test_slow_one` runs it."""
    return item_is_slow and not markexpr and item_path.resolve() not in named


def pytest_collection_modifyitems(config, items):
    """Slow tests (the `slow` marker) are left out of a plain `pytest` (CI) and run with `pytest -m slow`."""
    named = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    markexpr = config.getoption("markexpr", "")
    left_out = [i for i in items if slow_left_out(i.path, i.get_closest_marker("slow") is not None, named, markexpr)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [i for i in items if i not in left_out]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared/ folder beside the repository; skips the test when it is missing."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is not present")
    return SHARED_DIR


@pytest.fixture(scope="session")
def spec_text(shared_dir) -> str:
    """Text of shared/spec/record21.md (skips when absent)."""
    path = shared_dir / "spec" / "record21.md"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session", autouse=True)
def _keep_large_allocations():
    """What `speedrun.train.run` does on CPU anyway: keep freed (T x vocab) buffers in the heap; without it every
    step re-faults zeroed pages and the model tests run several times slower on a small VM."""
    from speedrun.plan import keep_large_allocations

    keep_large_allocations()


@pytest.fixture(autouse=True)
def _fresh_compile_cache_on_gpu(request):
    """Each GPU test (tests/gpu) starts with an empty torch.compile cache, and fails if dynamo hits its recompile limit.

    Dynamo counts the compiles of one code object (GPT.forward) over the whole pytest process, and past its limit (8)
    runs that code eagerly without failing: a compiled-path check then tests the eager path, and FlexAttention's eager
    fallback builds dense scores (96 GiB for test_val_loss_gpu's 64K-token row: an OOM in part 28's call A)."""
    if request.node.path.parent.name != "gpu":
        yield
        return
    import torch._dynamo

    torch._dynamo.reset()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield
    torch._dynamo.reset()


# The traceback of Triton 3.6's interpreter (torch 2.11's pin) under NumPy >= 2.4 at a kernel's `range(0, V, BLOCK)`
# over a runtime V: its tensor's __index__ is int(data) on a shape-(1,) array (seen with torch 2.11 on a CPU).
INTERPRETER_INDEX_BUG = ("triton/runtime/interpreter.py", "int(self.handle.data)",
                         "only 0-dimensional arrays can be converted to Python scalars")


@pytest.fixture
def run_interpreted():
    """A function that runs a Python script in a fresh process under Triton's interpreter (TRITON_INTERPRET is read
    when a kernel is defined) and returns (the finished process, the JSON on its last stdout line or None).
    Skips the test where the script met a known bug of an older Triton's interpreter (INTERPRETER_INDEX_BUG)."""
    triton = pytest.importorskip("triton")

    def run(script: str, timeout: int = 300):
        env = dict(os.environ, TRITON_INTERPRET="1")
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode and all(s in done.stderr for s in INTERPRETER_INDEX_BUG):
            pytest.skip(f"Triton {triton.__version__}'s interpreter takes int() of a 1-element array as a loop bound, "
                        f"which NumPy {np.__version__} refuses (Triton 3.9's squeezes it first); not our kernel's bug")
        lines = done.stdout.strip().splitlines()
        return done, json.loads(lines[-1]) if done.returncode == 0 and lines else None

    return run


def checkpoint_at(folder, step: int, recipe: str = "tiny") -> Path:
    """The one checkpoint of `step` in `folder` (its name also carries the id of the run that wrote it)."""
    (path,) = Path(folder).glob(f"ckpt_{recipe}_*_step{step:06d}.pt")
    return path


def mlp_test_batch(model) -> tuple[list, torch.Tensor, torch.Tensor]:
    """(the model's MLPs, inputs, targets) for tests of the MLP's FP8 paths: the zero-initialised projections and the
    head get values, so that the loss depends on the MLPs; 256 random tokens, fixed seeds."""
    mlps = [b.mlp for b in model.blocks if b.mlp is not None]
    with torch.no_grad():
        for m in mlps:
            m.c_proj.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(3))
        model.lm_head.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(4))
    x = torch.randint(0, 50256, (256,), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 50256, (256,), generator=torch.Generator().manual_seed(2))
    return mlps, x, y


def killed_mid_write(folder, folder_too: bool = False):
    """A process that starts write_atomic (or temp_folder) in `folder` and is SIGKILLed mid-write: what it leaves."""
    code = ("import sys, time; from pathlib import Path; from speedrun.files import temp_folder, write_atomic\n"
            "d = Path(sys.argv[1])\n"
            "if sys.argv[2] == 'folder': (temp_folder(d, 'data-tokenize') / 'x.bin').write_bytes(b'x' * 3000)\n"
            "write_atomic(d / 'ckpt.pt', lambda f: (f.write(b'x' * 5000), f.flush(), print('writing', flush=True),"
            " time.sleep(120)))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), "folder" if folder_too else "file"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
        left = sorted(p for p in folder.iterdir() if p.name.startswith("."))
        assert left, "the writer's temporary file is there while it writes"
        return proc, left
    except BaseException:
        proc.kill()
        raise
