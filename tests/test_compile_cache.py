"""The portable compile cache: its file checks, and two fresh processes where the second compiles nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_train import SMALL

import speedrun.compile_cache as cc
from speedrun.compile_cache import CompileCache, environment
from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard
from speedrun.errors import TrainingError

CPU = torch.device("cpu")


def write_cache(path, payload: bytes, **header_changes) -> None:
    header = dict(format=cc.MAGIC, version=cc.VERSION, **environment(CPU), sha256=hashlib.sha256(payload).hexdigest())
    header.update(header_changes)
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def test_missing_file_is_a_first_run(tmp_path):
    cache = CompileCache(tmp_path / "c.cache", CPU)
    assert "none yet" in cache.load() and cache.loaded == set()


@pytest.mark.parametrize("content", [b"", b"hello", b"{\"format\": \"something else\"}\nxx", b"\x00\xff\n\x00"])
def test_not_a_cache_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "c.cache"
    path.write_bytes(content)
    with pytest.raises(TrainingError, match=r"compile cache .*c\.cache: .*delete it") as e:
        CompileCache(path, CPU).load()
    assert "\n" not in str(e.value)


def test_damaged_payload_fails_its_checksum(tmp_path):
    path = tmp_path / "c.cache"
    write_cache(path, b"some artifacts")
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    with pytest.raises(TrainingError, match="checksum"):
        CompileCache(path, CPU).load()


def test_cache_from_another_setup_is_skipped_and_said(tmp_path):
    path = tmp_path / "c.cache"
    write_cache(path, b"not loaded", torch="1.0.0")
    cache = CompileCache(path, CPU)
    message = cache.load()
    assert "torch 1.0.0 (here " in message and "compiling afresh" in message and cache.loaded == set()


def test_torch_rejecting_the_artifacts_is_an_error(tmp_path):
    path = tmp_path / "c.cache"
    write_cache(path, b"right checksum, wrong bytes")
    with pytest.raises(TrainingError, match="torch could not load"):
        CompileCache(path, CPU).load()


def test_a_process_writes_one_file_at_most(tmp_path, monkeypatch):
    monkeypatch.setattr(cc, "_packed", True)
    assert "already wrote one" in CompileCache(tmp_path / "c.cache", CPU).save()
    assert not (tmp_path / "c.cache").exists()


def test_compile_cache_path_that_is_a_folder_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "speedrun", "train", "--recipe", "tiny", "--device", "cpu",
                          "--compile-cache", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--compile-cache" in out.stderr and "is a folder" in out.stderr


def train_with_cache(shards, cache, inductor_dir, log_dir) -> str:
    train, val = shards
    # two layers, not tiny's six, alike (both long windows, no value embeddings): what is tested is the cache file,
    # and Inductor's C++ compiles on a CPU take most of this test's time, one per distinct kernel (even a process
    # that takes every graph from the cache compiles its kernels' C++ again)
    settings = {**SMALL, "compile": "on", "steps": 2, "val_every": 0, "warmup_steps": 1, "val_tokens": 512,
                "sample_tokens": 0, "train_files": str(train), "val_files": str(val), "train_loop": "false",
                "num_layers": 2, "window_pattern": "LL", "no_attn_layers": "[]", "value_embeds": 0}
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    # each process its own empty Inductor folder: as on a fresh machine, only the cache file can make it hit
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor_dir)}
    out = subprocess.run([sys.executable, "-m", "speedrun", "train", "--recipe", "tiny", "--device", "cpu", *sets,
                          "--log-dir", str(log_dir), "--no-final-checkpoint", "--compile-cache", str(cache)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow  # 2-2.5 min on 2 CPU cores; `pytest -m slow`
def test_second_fresh_process_compiles_nothing(tmp_path):
    train = write_shard(tmp_path / "train_000000.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:20_000]))
    val = write_shard(tmp_path / "val_000000.bin", np.array(read_shard(DEMO_DIR / "demo_val_000000.bin")[:2_000]))
    cache = tmp_path / "run.cache"
    first = train_with_cache((train, val), cache, tmp_path / "inductor1", tmp_path / "logs1")
    assert "none yet" in first and re.search(r"compiled graphs: 0 from the cache, [1-9]\d* compiled here", first)
    wrote = re.search(r"wrote (\d+) artifacts", first)
    assert wrote and cache.is_file()

    second = train_with_cache((train, val), cache, tmp_path / "inductor2", tmp_path / "logs2")
    assert f"loaded {wrote.group(1)} artifacts" in second
    assert re.search(r"compiled graphs: [1-9]\d* from the cache, 0 compiled here", second)
    assert "wrote" not in second  # nothing new: the file stays as it was
    final = [re.search(r"done: val_loss (\S+)", out).group(1) for out in (first, second)]
    assert final[0] == final[1]  # the cached kernels compute what the compiled ones did
    log = next((tmp_path / "logs2").glob("*.txt")).read_text()
    assert "note: compiled graphs:" in log and "note: compile cache" in log
