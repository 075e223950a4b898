"""Building the run: the compiled model's joint graph is kept by AOTAutograd's cache, the FP8 MLP's custom
autograd.Function included, so a second process (or a second compile) skips tracing and partitioning it; and every
cache key carries the fingerprint of the traced source, so an edited custom op's backward is compiled again. And the
trunk of the FlexAttention back-end (every GPU run's) traces as one graph, checked on a CPU."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch._dynamo.utils import counters

from speedrun.build import compiled_runner
from speedrun.model.gpt import GPT
from speedrun.plan import Plan
from speedrun.recipe import load_recipe

# two blocks of the delayed FP8 MLP (a custom autograd.Function) and no attention: the least that compiles the Function
SMALL_FP8 = ["fp8_mlp=true", "fp8_mlp_scaling='delayed'", "fp8_head=false", "fused_head_loss=false", "num_layers=2",
             "window_pattern='LL'", "no_attn_layers=[0, 1]", "value_embeds=0", "model_dim=64", "head_dim=32",
             "num_heads=2", "mlp_hidden=128", "seq_len=256", "val_seq_len=256", "window_ramp_tokens=256",
             "batch_tokens=256"]


def test_plain_plan_runs_the_model_itself():
    model = GPT(load_recipe("tiny"))
    assert compiled_runner(model, Plan(torch.device("cpu"), compile=False)) is model


def test_a_fresh_process_can_ask_for_the_compiled_runner_first():
    """`import torch` does not load torch._functorch.config, whose switch compiled_runner sets: speedrun.build loads
    it, so a script's first call is not an AttributeError (one was, until part 56)."""
    import subprocess
    import sys

    script = ("from types import SimpleNamespace; from speedrun.build import compiled_runner; "
              "from speedrun.model.gpt import GPT; from speedrun.recipe import load_recipe; "
              "compiled_runner(GPT(load_recipe('tiny')), SimpleNamespace(compile=True)); print('built')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["built"], done.stderr[-2000:]


@pytest.fixture
def custom_functions_uncacheable():
    """AOTAutograd's switch off, as in a fresh process, and back as it was afterwards: through torch's own
    `config.patch`, since pytest 9.2's monkeypatch undoes a setattr on a torch config module by deleting the entry,
    which hides the setting from every later test ("... does not exist")."""
    with torch._functorch.config.patch(autograd_cache_allow_custom_autograd_functions=False):
        yield


def test_second_compile_of_the_fp8_model_comes_from_the_aot_autograd_cache(tmp_path, monkeypatch,
                                                                           custom_functions_uncacheable):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # empty: the first compile cannot hit
    torch.manual_seed(0)
    model = GPT(load_recipe("tiny", SMALL_FP8)).train()
    x, y = torch.randint(0, 50000, (256,)), torch.randint(0, 50000, (256,))
    try:
        model(x[:128], y[:128], 2)
    except RuntimeError as e:
        pytest.skip(f"torch {torch.__version__} has no float8 _scaled_mm on CPU ({str(e)[:80]})")
    results = []
    counters.clear()
    for _ in range(2):
        torch._dynamo.reset()  # a new compile, as in a new process: only the on-disk caches remain
        for p in model.parameters():
            p.grad = None
        for b in model.buffers():
            if b.dtype == torch.float32 and b.shape == (2, 2):
                b.zero_()  # the MLPs' FP8 maxima: each compile starts from the same state
        loss = compiled_runner(model, Plan(torch.device("cpu"), compile=True))(x, y, model.window(5))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    aot = counters["aot_autograd"]
    assert aot["autograd_cache_bypass"] == 0, dict(aot)
    assert aot["autograd_cache_miss"] == 1 and aot["autograd_cache_hit"] == 1, dict(aot)
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def _scale_function(grad_factor: float) -> type[torch.autograd.Function]:
    """A custom autograd.Function whose backward differs by one constant: an edit to its code, as a user makes."""

    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * grad_factor

    return Scale


def test_an_edited_custom_backward_is_compiled_again_not_taken_from_the_cache(tmp_path, monkeypatch,
                                                                             custom_functions_uncacheable):
    """With custom autograd.Functions cacheable, an edit to one's backward must change the cache key: a stale entry
    would train with the old gradient and say nothing."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    compiled_runner(GPT(load_recipe("tiny")), Plan(torch.device("cpu"), compile=True))  # sets the switch

    def grad_through(fn: type[torch.autograd.Function]) -> Tensor:
        torch._dynamo.reset()  # as a new process would: only the on-disk caches remain
        x = torch.ones(4, requires_grad=True)
        torch.compile(lambda t: fn.apply(t).sum(), dynamic=False)(x).backward()
        return x.grad

    counters.clear()
    assert torch.equal(grad_through(_scale_function(2.0)), torch.full((4,), 2.0))
    assert torch.equal(grad_through(_scale_function(2.0)), torch.full((4,), 2.0))  # the same code: a hit
    assert torch.equal(grad_through(_scale_function(3.0)), torch.full((4,), 3.0))  # edited: a miss, the new gradient
    aot = counters["aot_autograd"]
    assert aot["autograd_cache_bypass"] == 0, dict(aot)
    assert aot["autograd_cache_miss"] == 2 and aot["autograd_cache_hit"] == 1, dict(aot)


# A custom op with a registered backward, as speedrun/model/fp8.py's head: the module is written to a folder that is
# fingerprinted like the package's traced source, then edited, and each version compiles in a process of its own on
# the same compile folders.
CUSTOM_OP_MODULE = '''
import torch

@torch.library.custom_op("test_build::scaled", mutates_args=())
def scaled(x: torch.Tensor) -> torch.Tensor:
    return x * 2

@scaled.register_fake
def _(x):
    return torch.empty_like(x)

def backward(ctx, g):
    return g * {factor}

scaled.register_autograd(backward, setup_context=lambda ctx, inputs, output: None)
'''

COMPILE_THROUGH_OP = '''
import json, sys, torch
import torch._functorch.config
from torch._dynamo.utils import counters
from speedrun.compile_cache import key_caches_to_source
sys.path.insert(0, sys.argv[1])
import op_source.model.op  # noqa: F401 (registers test_build::scaled)
key_caches_to_source(__import__("pathlib").Path(sys.argv[1]) / "op_source", ("model",))
x = torch.ones(4, requires_grad=True)
torch.compile(lambda t: torch.ops.test_build.scaled(t).sum(), dynamic=False)(x).backward()
print(json.dumps(dict(grad=x.grad[0].item(), **counters["aot_autograd"])))
'''


@pytest.mark.slow  # three fresh processes, 40 s on 2 CPU cores; `pytest -m slow`
def test_an_edited_custom_op_backward_misses_the_compile_caches_once_keyed_to_its_source(tmp_path):
    """AOTAutograd's cache keys on the graph before the joint trace, so it does not see a custom op's registered
    backward: without a tag, the edited backward (x3) compiled as the old one (x2), on torch 2.13 on a CPU and 2.11 on
    an H200 (experiments part 36). Tagged with the source's fingerprint (`key_caches_to_source`, which every compile
    of ours calls first), the edit misses and an unedited run hits."""
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "op_source" / "model"
    folder.mkdir(parents=True)
    for name in ("op_source", "op_source/model"):
        (tmp_path / name / "__init__.py").write_text("")

    def compile_with(factor: float) -> dict:
        (folder / "op.py").write_text(CUSTOM_OP_MODULE.format(factor=factor))
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run([sys.executable, "-c", COMPILE_THROUGH_OP, str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    tagged = [compile_with(f) for f in (2.0, 3.0, 3.0)]
    assert [t["grad"] for t in tagged] == [2.0, 3.0, 3.0]
    assert [t.get("autograd_cache_hit", 0) for t in tagged] == [0, 0, 1]  # the unedited rerun still hits


def test_the_flex_trunk_traces_as_one_graph_without_a_break():
    """Every GPU run attends through FlexAttention. An edit TorchDynamo cannot trace there would break the compiled
    trunk into pieces, each a launch's compile and a slower step, and no CPU run would notice: the CPU attends with
    dense masks. TorchDynamo traces the flex trunk on a CPU too (under no_grad: FlexAttention has no CPU backward),
    here with `fast`'s features (key offset, smear, gates, no attention in layer 0) at the first and last window."""
    r = load_recipe("fast", ["num_layers=4", "window_pattern='LSSL'", "no_attn_layers=[0]", "no_mlp_layers=[0]",
                             "model_dim=128", "num_heads=2", "head_dim=64", "mlp_hidden=512", "value_embeds=1",
                             "seq_len=1024", "val_seq_len=1024", "batch_tokens=1024", "window_ramp_tokens=256",
                             "fp8_mlp=false", "fp8_head=false", "fused_head_loss=false", "sampled_head_rows=0"])
    model = GPT(r, attention="flex").train()
    tokens = torch.randint(0, 50000, (1024,), generator=torch.Generator().manual_seed(0))
    tokens[::200] = 50256  # documents of 200 tokens
    torch._dynamo.reset()
    with torch.no_grad():
        for step in (0, r.steps - 1):
            found = torch._dynamo.explain(model.features)(tokens, model.window(step))
            assert (found.graph_count, found.graph_break_count) == (1, 0), found.break_reasons
            (graph,) = found.graphs
            flex_calls = [n for n in graph.graph.nodes if "flex_attention" in str(n.target)]
            assert len(flex_calls) == 3, [str(n.target) for n in flex_calls]  # layers 1-3 attend
    torch._dynamo.reset()


COMPILED_TIED_HEAD = '''
from types import SimpleNamespace
from speedrun.build import compiled_runner
from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe

r = load_recipe("fast", ["num_layers=2", "window_pattern='LS'", "no_attn_layers=[]", "no_mlp_layers=[]",
                         "value_embeds=0", "model_dim=64", "head_dim=32", "num_heads=2", "mlp_hidden=128",
                         "seq_len=256", "val_seq_len=256", "window_ramp_tokens=256", "batch_tokens=256",
                         "fp8_mlp=false", "sampled_head_rows=0", "mtp_weights=[]"])
torch.manual_seed(0)
model = GPT(r)
torch.nn.init.normal_(model.lm_head.weight, std=0.02)
for table in model.embedding_tables():
    table.bfloat16()  # as on the GPU (speedrun.build)
V, K = model.embed.weight.shape

tokens = torch.randint(0, 50257, (257,), generator=torch.Generator().manual_seed(0))
tokens[0] = tokens[90] = 50256
loss = compiled_runner(model, SimpleNamespace(compile=True))(tokens[:-1].int(), tokens[1:].long(), 2)
with TableOps((V, K)) as mode:
    loss.backward()
print(json.dumps(dict(fused=model.fused_head_loss_active(), tied=model.lm_head.weight is model.embed.weight,
                      ops=mode.ops, grad=[str(model.embed.weight.grad.dtype), list(model.embed.weight.grad.stride())])))
'''


@pytest.mark.slow  # 1.5 min on 2 CPU cores; `pytest -m slow`
def test_the_compiled_tied_head_leaves_its_gradient_as_autograd_keeps_it(run_interpreted):
    """fast's FP8 head on a tied bf16 table, through the trainer's compiled runner: the head's weight gradient comes
    out of the compiled graph in the table's dtype and layout, so no eager kernel casts it or copies it into the
    parameter's layout after the graph (part 55 found such a copy, a pass over 50,304 x 768 each step)."""
    from test_fp8 import INTERPRETED_FP8_PRELUDE, needs_cpu_scaled_mm

    if needs_cpu_scaled_mm.args[0]:
        pytest.skip(needs_cpu_scaled_mm.kwargs["reason"])
    done, r = run_interpreted(INTERPRETED_FP8_PRELUDE + COMPILED_TIED_HEAD, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert r["fused"] and r["tied"], r
    assert not any(op.startswith(("aten._to_copy", "aten.copy_", "aten.new_empty_strided", "aten.clone"))
                   for op, _ in r["ops"]), r["ops"]
    assert r["grad"] == ["torch.bfloat16", [64, 1]], r
