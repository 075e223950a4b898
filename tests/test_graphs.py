"""The graphed step's bookkeeping on CPU (speedrun.graphs with EagerGraph, which re-runs what a CUDA graph would
replay): static inputs, one graph per sampled-head row count, gradients rewritten where the capture put them, and
training equal to plain steps. The plan turns graphs on for one GPU only. Replays on a GPU: tests/gpu."""

import pytest
import torch
from test_device_plan import fake_gpu

from speedrun.build import build_model, build_optimizers
from speedrun.graphs import EagerGraph, GraphedSteps
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.step import train_step, warmup_and_restore

SMALL = dict(model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128, seq_len=256, val_seq_len=256,
             window_ramp_tokens=256, batch_tokens=512, steps=6, warmup_steps=2, mtp_weights=[0.5],
             sampled_head_rows=1024, sampled_head_end_frac=0.5)


def batches(step, accum=2, T=256):
    out = []
    for m in range(accum):
        t = torch.randint(0, 50257, (T + 1,), generator=torch.Generator().manual_seed(100 * step + m))
        out.append((t[:-1].int(), t[1:].long()))
    return out


def train(graphed: bool):
    r = load_recipe("tiny", SMALL)
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    optimizers = build_optimizers(model, r)
    graphs = GraphedSteps(model, plan.device) if graphed else None
    warmup_and_restore(model, optimizers, r, plan, 1, graphs=graphs)
    losses = [train_step(model, batches(s), optimizers, s, 1, r, 1, graphs=graphs).item() for s in range(r.steps)]
    return model, losses, graphs


def test_graphed_steps_train_as_plain_steps():
    plain, plain_losses, _ = train(graphed=False)
    model, losses, graphs = train(graphed=True)
    # the warm-up captured both head modes of the run: 1024 sampled rows (steps 0-2), then the full softmax
    assert sorted(graphs.captured) == [0, 1024]
    assert all(isinstance(c.graph, EagerGraph) for c in graphs.captured.values())
    assert losses == plain_losses
    for (name, a), b in zip(plain.named_parameters(), model.parameters()):
        assert torch.equal(a, b), name
    # each mode keeps a gradient of its own for every parameter, which its replays rewrite
    grads = [c.grads for c in graphs.captured.values()]
    assert all(g is not None for g in grads[0] + grads[1]) and not any(a is b for a, b in zip(*grads))


def test_replay_reads_new_inputs_and_window():
    r = load_recipe("tiny", SMALL)
    model = build_model(r, make_plan(r, force_device="cpu"))
    torch.nn.init.normal_(model.lm_head.weight, std=0.02)  # a zero head scores every input ln(vocab)
    model.set_step(0)
    graphs = GraphedSteps(model, torch.device("cpu"))
    first = graphs(batches(0), 1)
    static = [t.data_ptr() for pair in graphs.batches for t in pair]
    again = graphs(batches(0), 1)
    other = graphs(batches(1), 1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert [t.data_ptr() for pair in graphs.batches for t in pair] == static  # copied into, not replaced
    assert len(graphs.captured) == 1  # one head mode so far: one capture


def test_a_different_micro_batch_count_is_refused():
    r = load_recipe("tiny", SMALL)
    model = build_model(r, make_plan(r, force_device="cpu"))
    model.set_step(0)
    graphs = GraphedSteps(model, torch.device("cpu"))
    graphs(batches(0, accum=2), 1)
    with pytest.raises(ValueError, match="captured for 2 micro-batches a step, not 1"):
        graphs(batches(0, accum=1), 1)


def test_plan_turns_graphs_on_for_one_gpu_only(monkeypatch):
    fake_gpu(monkeypatch, (9, 0))
    r = load_recipe("fast_1gpu", ["cuda_graphs=true"])
    plan = make_plan(r)
    assert plan.cuda_graphs and "CUDA graphs: each step's forward and backward passes replayed" in plan.describe(r)
    monkeypatch.setenv("WORLD_SIZE", "2")
    plan = make_plan(load_recipe("fast_1gpu", ["cuda_graphs=true", "batch_tokens=98304"]))
    assert not plan.cuda_graphs and any("measured on one GPU only" in n for n in plan.notes)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not make_plan(load_recipe("fast_1gpu", ["cuda_graphs=false"])).cuda_graphs


def test_plan_runs_without_graphs_on_cpu():
    plan = make_plan(load_recipe("tiny", ["cuda_graphs=true"]), force_device="cpu")
    assert not plan.cuda_graphs and any("CUDA graphs need a GPU" in n for n in plan.notes)
