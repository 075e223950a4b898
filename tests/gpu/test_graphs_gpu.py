"""GPU check of CUDA graphs (speedrun.graphs): a compiled `fast` run (small model: FlexAttention, FP8 head and MLP,
fused loss, multi-token prediction, a sampled head that switches to the full softmax halfway) trained with each
step's forward and backward replayed from graphs, against the same run without graphs."""

import pytest
import torch
from test_gpu import SMALL_MODEL

from speedrun.model.fp8 import fp8_supported
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.train import run

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and fp8_supported()),
                                reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")


def test_graphed_run_trains_as_the_eager_run(tmp_path):
    settings = [*SMALL_MODEL, "train_files='demo'", "val_files='demo'", "val_tokens=8192", "train_loop=true",
                "steps=16", "warmup_steps=2", "val_every=8", "sample_tokens=0", "sampled_head_rows=8192",
                "sampled_head_end_frac=0.5"]
    results, said = {}, {}
    # The first run in a process compiles and differs from later ones (tests/gpu/test_checkpoint_gpu.py): it only
    # compiles here.
    for name in ("compile", "eager", "graphs"):
        r = load_recipe("fast", settings + [f"cuda_graphs={'true' if name == 'graphs' else 'false'}"])
        plan = make_plan(r, force_device="cuda")
        assert plan.cuda_graphs == (name == "graphs")
        lines = said[name] = []
        results[name] = run(r, plan, log_dir=str(tmp_path / "logs"), say=lambda m, lines=lines: lines.append(m))
    eager, graphed = results["eager"], results["graphs"]
    assert any("CUDA graphs: 2 captured" in m for m in said["graphs"]), said["graphs"]
    loss_diff = (torch.tensor(graphed.train_losses) - torch.tensor(eager.train_losses)).abs().max().item()
    val_diff = max(abs(a[1] - b[1]) for a, b in zip(graphed.val_losses, eager.val_losses))
    sa, sg = eager.model.state_dict(), graphed.model.state_dict()
    rel = lambda k: ((sg[k].float() - sa[k].float()).norm() / sa[k].float().norm().clamp_min(1)).item()
    param_diff, worst = max((rel(k), k) for k in sa)
    print(f"\ngraphed vs eager: max |train loss diff| {loss_diff:.2e}, max |val diff| {val_diff:.2e}, "
          f"max relative parameter diff {param_diff:.2e} ({worst}); losses {graphed.train_losses[-3:]} vs "
          f"{eager.train_losses[-3:]}; peak {graphed.peak_allocated_mib} vs {eager.peak_allocated_mib} MiB")
    # the same kernels in the same order: only the GPU's own run-to-run differences (atomic adds), as in the
    # resume test, which Muon amplifies in the zero-initialised projections
    assert len(graphed.train_losses) == 16 and [s for s, _ in graphed.val_losses] == [0, 8, 16]
    assert loss_diff < 1e-3 and val_diff < 1e-3 and param_diff < 0.05
    # the peak reported for the graphed run is its captured step's: within 10% of the eager run's
    assert abs(graphed.peak_allocated_mib - eager.peak_allocated_mib) < 0.1 * eager.peak_allocated_mib
