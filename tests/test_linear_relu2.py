"""The fused linear + ReLU^2 MLP (`fused_mlp`): its PyTorch references, the Triton kernels and the whole custom op
against the plain MLP in Triton's interpreter (CPU, a fresh process; skipped where Triton is not installed), the
op's fake (meta) outputs against the real ones, and the recipe field and the trainer's plan. On the GPU:
tests/gpu/test_gpu.py and benchmarks/mlp.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from speedrun.kernels.linear_relu2 import (
    linear_relu2,
    linear_relu2_reference,
    linear_relu2_usable,
    relu2_backward,
    relu2_backward_reference,
    relu2_mlp_reference,
)
from speedrun.model.gpt import GPT, MLP
from speedrun.recipe import RecipeError, load_recipe
from speedrun.train import build_model, make_plan

SMALL = dict(model_dim=64, head_dim=32, num_heads=2, mlp_hidden=128, seq_len=256, val_seq_len=256,
             window_ramp_tokens=256, batch_tokens=256)


def test_references_are_the_relu2_mlp_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    x, w, w2 = torch.randn(9, 12, generator=g), torch.randn(20, 12, generator=g), torch.randn(7, 20, generator=g)
    pre = (x @ w.T).requires_grad_()
    h = F.relu(pre).square()
    assert torch.equal(linear_relu2_reference(x, w), h.detach())
    assert (h == 0).any() and (h > 0).any()  # both sides of the ReLU are exercised
    dy = torch.randn(9, 7, generator=g)
    (h @ w2.T).backward(dy)
    # 2 sqrt(h) is 2 relu(pre) exactly in float32 (IEEE sqrt of a rounded square gives the number back)
    torch.testing.assert_close(relu2_backward_reference(dy, w2, h.detach()), pre.grad, rtol=1e-6, atol=1e-6)
    y = relu2_mlp_reference(x.bfloat16(), w, w2)  # weights cast to x's dtype, as CastedLinear does
    assert y.dtype == torch.bfloat16 and y.shape == (9, 7)
    r = load_recipe("tiny", SMALL)
    mlp = MLP(r)
    with torch.no_grad():
        mlp.c_proj.weight.normal_(0, 0.1, generator=g)
    xm = torch.randn(2, 5, r.model_dim, generator=g)
    assert torch.equal(mlp(xm), relu2_mlp_reference(xm, mlp.c_fc.weight, mlp.c_proj.weight))


def test_kernels_reject_bad_inputs():
    with pytest.raises(ValueError, match="all bfloat16 or all float32"):
        linear_relu2(torch.zeros(4, 4, dtype=torch.float64), torch.zeros(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="all bfloat16 or all float32"):
        linear_relu2(torch.zeros(4, 4), torch.zeros(4, 4, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="differ in K"):
        linear_relu2(torch.zeros(4, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="do not fit"):
        relu2_backward(torch.zeros(4, 3), torch.zeros(3, 5), torch.zeros(4, 6))


def test_cpu_without_interpreter_cannot_take_the_kernel():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("under the interpreter the kernel does run on CPU tensors")
    assert not linear_relu2_usable(torch.zeros(2, 2))


INTERPRETED = textwrap.dedent("""
    import json, torch
    import torch.nn.functional as F
    from speedrun.kernels.linear_relu2 import (fused_linear_relu2_mlp, linear_relu2, linear_relu2_reference,
        linear_relu2_usable, relu2_backward, relu2_backward_reference, relu2_mlp_reference)
    torch.manual_seed(0)
    out = dict(usable=linear_relu2_usable(torch.zeros(2, 2)), forward={}, backward={}, op={}, fake={})
    rel = lambda a, b: ((a.double() - b.double()).norm() / b.double().norm()).item()
    # (N, K, M, config): sizes not multiples of the tiles (32 x 32 x 32 by default, or the given one)
    cases = [(70, 50, 45, None), (33, 17, 96, (16, 32, 16, 2, 4, 1)), (64, 64, 64, (32, 16, 32, 1, 4, 1)),
             (5, 40, 130, (16, 64, 16, 4, 4, 1))]
    for n, k, m, cfg in cases:
        for dtype in (torch.float32, torch.bfloat16):
            key = f"{n}x{k}->{m}/{cfg}/{dtype}"
            x, w = torch.randn(n, k).to(dtype), (torch.randn(m, k) * k**-0.5).to(dtype)
            h = linear_relu2(x, w, config=cfg)
            want = linear_relu2_reference(x, w)
            out["forward"][key] = dict(shape=list(h.shape), dtype=str(h.dtype), err=rel(h, want),
                                       max_err=((h.float() - want.float()).abs().max() / want.float().abs().max()
                                                ).item(), zeros=(want == 0).float().mean().item(),
                                       zeros_kept=bool(torch.equal(h == 0, want == 0)))
            # the backward epilogue, dpre = (dy @ w2) * 2 sqrt(h), against dh * 2 relu(pre) from torch (float32
            # pre: the exact value the bf16 kernels approximate) and against its own reference
            d = 37
            dy, w2 = torch.randn(n, d).to(dtype), (torch.randn(d, m) * d**-0.5).to(dtype)
            dpre = relu2_backward(dy, w2, h, config=cfg)
            pre = x.float() @ w.float().T
            exact = (dy.float() @ w2.float()) * 2 * F.relu(pre)
            out["backward"][key] = dict(shape=list(dpre.shape), dtype=str(dpre.dtype), err=rel(dpre, exact),
                                        ref_err=rel(dpre, relu2_backward_reference(dy, w2, h)),
                                        zeros_kept=bool(torch.equal(dpre[pre <= 0] == 0, torch.ones_like(dpre[pre <= 0],
                                                                                                          dtype=bool))))
    # the whole op against autograd of the plain MLP (F.linear, relu, square), leading dims, float32 weights
    for shape, m in [((3, 41, 24), 72), ((50, 16), 40)]:
        for dtype in (torch.float32, torch.bfloat16):
            d = shape[-1]
            x = torch.randn(shape).to(dtype).requires_grad_()
            w_fc = (torch.rand(m, d) * 2 - 1).mul(3**0.5 * 0.5 * d**-0.5).requires_grad_()
            w_proj = (torch.randn(d, m) * 0.05).requires_grad_()
            g = torch.randn(shape).to(dtype)
            y = fused_linear_relu2_mlp(x, w_fc, w_proj)
            y.backward(g)
            got = [y.detach(), x.grad, w_fc.grad, w_proj.grad]
            x.grad = w_fc.grad = w_proj.grad = None
            y_ref = relu2_mlp_reference(x, w_fc, w_proj)
            y_ref.backward(g)
            want = [y_ref.detach(), x.grad, w_fc.grad, w_proj.grad]
            # and both against the float64 MLP, to see which is closer to exact
            x64, f64, p64 = (t.detach().double().requires_grad_() for t in (x, w_fc, w_proj))
            y64 = F.linear(F.relu(F.linear(x64, f64)).square(), p64)
            y64.backward(g.double())
            exact = [y64.detach(), x64.grad, f64.grad, p64.grad]
            names = ["y", "grad_x", "grad_w_fc", "grad_w_proj"]
            out["op"][f"{list(shape)}->{m}/{dtype}"] = {
                name: dict(dtype=str(a.dtype), want_dtype=str(b.dtype), shape=list(a.shape), stride=list(a.stride()),
                           err=rel(a, b), err_exact=rel(a, e), plain_err_exact=rel(b, e))
                for name, a, b, e in zip(names, got, want, exact)}
            # fake (meta) outputs: shapes, dtypes and strides as the real op's, forward and backward
            x2 = x.detach().flatten(0, -2)
            real = torch.ops.speedrun.relu2_mlp(x2, w_fc.detach(), w_proj.detach())
            meta = torch.ops.speedrun.relu2_mlp(*(t.to("meta") for t in (x2, w_fc.detach(), w_proj.detach())))
            g2 = g.flatten(0, -2)
            real_b = torch.ops.speedrun.relu2_mlp_backward(g2, x2, real[1], w_fc.detach(), w_proj.detach())
            meta_b = torch.ops.speedrun.relu2_mlp_backward(
                *(t.to("meta") for t in (g2, x2, real[1], w_fc.detach(), w_proj.detach())))
            desc = lambda ts: [[list(t.shape), list(t.stride()), str(t.dtype), str(t.device)] for t in ts]
            out["fake"][f"{list(shape)}->{m}/{dtype}"] = dict(real=desc(real) + desc(real_b),
                                                              meta=desc(meta) + desc(meta_b))
    torch.library.opcheck(torch.ops.speedrun.relu2_mlp.default,
                          (torch.randn(20, 16), torch.randn(24, 16), torch.randn(16, 24)),
                          test_utils=("test_schema", "test_faketensor"))
    # compiled: one opaque op, no graph break (fullgraph); aot_eager keeps it quick. Same values as eager.
    x = torch.randn(2, 40, 24, dtype=torch.bfloat16, requires_grad=True)
    w_fc, w_proj = torch.randn(64, 24, requires_grad=True), torch.randn(24, 64, requires_grad=True)
    f = lambda x, a, b: fused_linear_relu2_mlp(x, a, b).float().square().mean()
    grads = []
    for fn in (torch.compile(f, backend="aot_eager", fullgraph=True, dynamic=False), f):
        loss = fn(x, w_fc, w_proj)
        loss.backward()
        grads.append([loss.detach(), x.grad, w_fc.grad, w_proj.grad])
        x.grad = w_fc.grad = w_proj.grad = None
    out["compiled_equal"] = all(torch.equal(a, b) for a, b in zip(*grads))
    # the model: fused_mlp on (float32 on CPU, the interpreter standing in for the GPU) against off
    from speedrun.model.gpt import GPT
    from speedrun.recipe import load_recipe
    SMALL = json.loads(%r)
    r = load_recipe("tiny", {**SMALL, "num_layers": 2, "window_pattern": "LS", "no_attn_layers": [],
                             "value_embeds": 1, "fused_mlp": True})
    model = GPT(r)
    with torch.no_grad():
        for b in model.blocks:  # the zero-initialised projections given values, so the loss depends on the MLPs
            b.mlp.c_proj.weight.normal_(0, 0.05)
        model.lm_head.weight.normal_(0, 0.05)
    tok = torch.randint(0, 50256, (257,))
    results = []
    for fused in (True, False):
        for b in model.blocks:
            b.mlp.fused = fused
        model.zero_grad()
        loss = model.train()(tok[:-1], tok[1:], 2)
        loss.backward()
        results.append([loss.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None])
    out["model"] = dict(loss=[results[0][0].item(), results[1][0].item()],
                        worst_grad_err=max(rel(a, b) for a, b in zip(results[0][1:], results[1][1:])),
                        grads=len(results[0]) - 1)
    print(json.dumps(out))
""")


def test_triton_kernels_and_op_match_the_plain_mlp_in_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")  # read when the kernel is defined: a fresh process
    done = subprocess.run([sys.executable, "-c", INTERPRETED % json.dumps(SMALL)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))
    assert results["usable"]
    assert len(results["forward"]) == len(results["backward"]) == 8
    for case, r in results["forward"].items():
        n, m = int(case.split("x")[0]), int(case.split("->")[1].split("/")[0])
        assert r["shape"] == [n, m] and r["dtype"] in case, (case, r)
        assert 0.2 < r["zeros"] < 0.8 and r["zeros_kept"], (case, r)  # the ReLU: the same entries are 0
        # float32: accumulation order only; bfloat16: both round the float32 value, at most one bf16 step apart
        assert r["err"] < (1e-5 if "float32" in case else 2**-8), (case, r)
        assert r["max_err"] < (1e-6 if "float32" in case else 2**-8), (case, r)
    for case, r in results["backward"].items():
        assert r["shape"] == [int(case.split("x")[0]), int(case.split("->")[1].split("/")[0])], (case, r)
        assert r["dtype"] in case and r["zeros_kept"], (case, r)
        assert r["ref_err"] < (1e-5 if "float32" in case else 2**-8), (case, r)
        # against dh * 2 relu(pre) from the exact float32 pre: bf16 inputs of h, dy, w2 rounded, so ~2^-8 apart
        assert r["err"] < (1e-5 if "float32" in case else 2**-7), (case, r)
    assert len(results["op"]) == 4
    for case, grads in results["op"].items():
        for name, r in grads.items():
            assert r["dtype"] == r["want_dtype"], (case, name, r)  # x's dtype for y, grad_x; float32 for weights
            assert r["stride"] == _contiguous(r["shape"]), (case, name, r)
            if "float32" in case:
                assert r["err"] < 1e-5, (case, name, r)
            else:
                # the plain bf16 path rounds pre, relu(pre), h, dh and dpre; the fused one only h and dpre: the two
                # differ by bf16 rounding, and the fused path is no further from float64 than the plain one
                assert r["err"] < 0.02, (case, name, r)
                assert r["err_exact"] < 1.1 * r["plain_err_exact"] + 1e-3, (case, name, r)
    for case, r in results["fake"].items():
        assert [t[:3] for t in r["real"]] == [t[:3] for t in r["meta"]], case
        assert all(t[3] == "meta" for t in r["meta"]) and len(r["real"]) == 5, case
    assert results["compiled_equal"]
    m = results["model"]
    assert m["grads"] > 10
    assert abs(m["loss"][0] - m["loss"][1]) < 1e-5 * m["loss"][1], m
    assert m["worst_grad_err"] < 1e-4, m


def _contiguous(shape: list[int]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.insert(0, step)
        step *= size
    return strides


# --- the recipe field and the trainer's plan --------------------------------------------------------------------------
def test_recipe_field_off_by_default_and_exclusive_with_fp8_mlp():
    for name in ("record21", "fast", "fast_1gpu", "tiny"):
        assert load_recipe(name).fused_mlp is False, name
    assert load_recipe("fast_1gpu", ["fp8_mlp=false", "fused_mlp=true"]).fused_mlp is True
    with pytest.raises(RecipeError, match="fused_mlp and fp8_mlp are both true"):
        load_recipe("fast_1gpu", ["fused_mlp=true"])  # fast has fp8_mlp on
    with pytest.raises(RecipeError, match="fused_mlp"):
        load_recipe("fast_1gpu", ["fused_mlp=1"])


def test_plan_turns_it_off_on_cpu_and_training_is_unchanged(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = load_recipe("tiny", {**SMALL, "fused_mlp": True})
    plan = make_plan(r)
    assert not plan.fused_mlp
    assert "fused_mlp needs a GPU: the MLP runs unfused on CPU" in plan.notes
    assert "fused" not in plan.describe(r).split("MLP matmuls:")[1].splitlines()[0]
    model = build_model(r, plan)
    mlps = [b.mlp for b in model.blocks if b.mlp is not None]
    assert mlps and not any(m.fused for m in mlps)
    assert not make_plan(load_recipe("tiny", SMALL)).notes[1:]  # no note when the field is off

    def loss_and_grads(model):
        model.zero_grad(set_to_none=True)
        tok = torch.randint(0, 50256, (257,), generator=torch.Generator().manual_seed(1))
        loss = model.train()(tok[:-1], tok[1:], 2)
        loss.backward()
        return [loss.detach()] + [p.grad for p in model.parameters() if p.grad is not None]

    off = build_model(load_recipe("tiny", SMALL), make_plan(load_recipe("tiny", SMALL)))
    for a, b in zip(loss_and_grads(model), loss_and_grads(off)):
        assert torch.equal(a, b)
    # and a model that kept the flag on (not built by the trainer) still runs the plain MLP on CPU tensors
    if os.environ.get("TRITON_INTERPRET") != "1":
        torch.manual_seed(r.seed)
        kept = GPT(r)
        assert all(b.mlp.fused for b in kept.blocks if b.mlp is not None)
        for a, b in zip(loss_and_grads(kept), loss_and_grads(off)):
            assert torch.equal(a, b)


def test_plan_on_a_gpu_keeps_it_and_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU sm90")
    r = load_recipe("fast_1gpu", ["fp8_mlp=false", "fused_mlp=true"])
    plan = make_plan(r)
    assert plan.fused_mlp and not plan.notes
    assert "c_fc fused with the ReLU^2" in plan.describe(r)
    assert not make_plan(load_recipe("fast_1gpu")).fused_mlp
    assert "c_fc fused" not in make_plan(load_recipe("fast_1gpu")).describe(load_recipe("fast_1gpu"))
