"""Two gloo ranks x 1 accumulation step train exactly like 1 rank x 2 accumulation steps (CPU, torchrun)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speedrun.data.demo import DEMO_DIR
from speedrun.data.shards import read_shard, write_shard

WORKER = Path(__file__).with_name("dist_worker.py")
SEQ = 256


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    train = np.asarray(read_shard(DEMO_DIR / "demo_train_000000.bin")[:40_000])
    val = np.asarray(read_shard(DEMO_DIR / "demo_val_000000.bin")[:4_000])
    return str(write_shard(d / "train.bin", train)), str(write_shard(d / "val.bin", val)), d


def _run_raw(shards, nproc, batch_tokens, name, variant=""):
    train, val, d = shards
    out = str(d / f"{name}{variant}.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), out, train, val, str(batch_tokens), variant]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(WORKER), out, train, val, str(batch_tokens), variant]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _run(shards, nproc, batch_tokens, name, variant=""):
    proc = _run_raw(shards, nproc, batch_tokens, name, variant)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(str(shards[2] / f"{name}{variant}.pt"))


# "fast" holds every change of the fast recipe at once (its FP8 MLP included): a variant without the FP8 MLP took CI
# 23 s and tested nothing the two here do not
@pytest.mark.parametrize("variant", ["", "fast"], ids=["record21", "fast"])
def test_two_ranks_equal_one_rank_with_two_accumulation_steps(shards, variant):
    """Also with the fast recipe's changes: NorMuon's statistics are taken after the all-gather, on every rank, and
    the FP8 MLP's delayed scales come from the maxima of all ranks."""
    two_ranks = _run(shards, 2, 2 * SEQ, "ranks2", variant)
    one_rank = _run(shards, 1, 2 * SEQ, "accum2", variant)
    assert (two_ranks["world"], two_ranks["accum"]) == (2, 1)
    assert (one_rank["world"], one_rank["accum"]) == (1, 2)
    losses2, losses1 = np.array(two_ranks["train"]), np.array(one_rank["train"])
    assert len(losses1) == len(losses2) == 5
    loss_diff = np.abs(losses2 - losses1).max()
    param_diff = max((two_ranks["params"][k] - v).abs().max().item() for k, v in one_rank["params"].items())
    print(f"\nmax |loss difference| {loss_diff:.3e}, max |parameter difference| {param_diff:.3e}")
    # float32 tolerance: the sums of the two rows' gradients are formed in a different order
    assert loss_diff < 1e-5
    assert param_diff < 1e-5
    # and it is not trivially equal because nothing trained
    assert losses1[-1] < losses1[0] - 0.5
    # a different token stream gives clearly different losses (the comparison above can fail); that is the data
    # stream's doing, the same for every variant, so one variant checks it (a run of its own costs CI ~10 s)
    if variant == "":
        single_row = _run(shards, 1, SEQ, "accum1", variant)
        assert np.abs(np.array(single_row["train"])[1:] - losses1[1:]).max() > 1e-3


def test_a_signal_during_a_periodic_checkpoint_stops_every_rank_on_it(shards):
    # rank 0 alone notes it while writing step 2's checkpoint: the ranks agree at once (a sync, off the clock) and
    # all stop at step 2, on that checkpoint, instead of one step and one more checkpoint later
    stopped = _run_raw(shards, 2, 2 * SEQ, "stop", "stop_in_save")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    _, _, d = shards
    assert [torch.load(d / f"stopstop_in_save.pt.rank{rank}")["step"] for rank in (0, 1)] == [2, 2]
    assert [p.name.rsplit("_", 1)[-1] for p in (d / "stopstop_in_save.pt.ckpts").iterdir()] == ["step000002.pt"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists the process's threads through /proc (Linux)")
def test_shutdown_distributed_ends_gloos_threads():
    """After shutdown_distributed no gloo worker thread is left: one that outlived it ran into the interpreter's
    teardown, and where it still had the last collective's tensor to free it aborted the rank ("terminate called
    without an active exception", experiments part 62). They outlived it when torch._dynamo (imported by the first optimiser)
    was first imported after init_process_group: torch.distributed.nn's `group=group.WORLD` defaults kept the group."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    worker = Path(__file__).with_name("dist_teardown_worker.py")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [l for l in proc.stdout.splitlines() if "threads after shutdown" in l]
    assert len(lines) == 2, proc.stdout
    assert not any("gloo" in l for l in lines), lines
