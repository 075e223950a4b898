"""The delayed-scaling FP8 MLP pieces (speedrun/kernels/relu2_fp8.py, speedrun/model/fp8.py): the ReLU² cast
kernels in Triton's interpreter against their PyTorch references, the ops' CPU kernels and running maxima, the
autograd function against the float32 MLP, the recipe switch, and the trainer's roll of the maxima between steps."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import mlp_test_batch

from speedrun.kernels.relu2_fp8 import E4M3, E5M2, relu2_fp8_reference, relu2_grad_fp8_reference
from speedrun.model.fp8 import delayed_fp8_mlp, delayed_scale, normed_input_scale
from speedrun.recipe import RecipeError, load_recipe


def test_references_cast_saturate_and_measure():
    p = torch.tensor([[-3.0, 0.5, 30.0], [2.0, -0.1, 1.0]])
    y, yt, amax = relu2_fp8_reference(p, torch.tensor([1.0]))
    assert y.dtype == E4M3 and yt.shape == (3, 2) and torch.equal(yt.float(), y.float().t())
    assert y.float().tolist() == [[0.0, 0.25, 448.0], [4.0, 0.0, 1.0]]  # 900 saturates at e4m3's 448
    assert amax.item() == 900.0  # the maximum is of the values, not of the saturated cast
    g = torch.tensor([[1.0, -2.0, 1e5], [-1.0, 3.0, 0.5]])
    d, dt, damax = relu2_grad_fp8_reference(g, p, torch.tensor([2.0]))
    assert d.dtype == E5M2 and torch.equal(dt.float(), d.float().t())
    assert d.float().tolist() == [[0.0, -4.0, 57344.0], [-8.0, 0.0, 2.0]]
    assert damax.item() == 6e6


def test_normed_input_scale_fits_the_largest_normalised_value():
    for dim in (128, 768, 1024):
        s = normed_input_scale(dim)
        assert s * dim**0.5 * 1.01 <= 448 < 2 * s * dim**0.5 * 1.01
        x = torch.zeros(dim).bfloat16()
        x[0] = 1.0
        assert F.rms_norm(x.float(), (dim,)).abs().max() * s <= 448  # a one-hot row is the extreme: sqrt(dim)
    assert normed_input_scale(768) == 16.0


def test_delayed_scale_leaves_one_binade_and_falls_back_before_any_measurement():
    assert delayed_scale(torch.tensor(1.0), 0, E4M3).item() == 128.0  # 448 / (2 * 1) = 224 -> 128
    assert delayed_scale(torch.tensor(0.0), 0, E4M3).item() == 8.0  # fallback 16: 448 / 32 = 14 -> 8
    assert delayed_scale(torch.tensor(2.0**-20), 1, E5M2).item() == 2.0**34  # 57344 / 2^-19 = 1.75 * 2^34


INTERPRETED = textwrap.dedent("""
    import json, torch
    from speedrun.kernels.relu2_fp8 import relu2_fp8, relu2_grad_fp8, E4M3, E5M2
    torch.manual_seed(0)
    N, H = 70, 200  # not multiples of the blocks: the masks matter
    p = torch.randn(N, H) * 4
    g = torch.randn(N, H) * 1e-3
    g[3, 5] = 1e4  # saturates
    out = {}
    amax = torch.tensor([5.0])  # a running maximum: raised, never lowered
    y, yt = relu2_fp8(p, torch.tensor([8.0]), amax, out_dtype=torch.float32, block_n=16, block_h=32, num_warps=1)
    want = (p.clamp(min=0).square() * 8).clamp(max=448)
    out["h"] = [(y - want).abs().max().item(), (yt - want.t()).abs().max().item(), amax.item(),
                p.clamp(min=0).square().max().item()]
    amax = torch.tensor([1e9])
    rows_only = relu2_fp8(p, torch.tensor([8.0]), amax, out_dtype=torch.float32, cols=False, block_n=16,
                          block_h=32, num_warps=1)
    out["kept"] = amax.item()
    out["modes"] = [rows_only[1] is None, (rows_only[0] - y).abs().max().item()]
    amax = torch.zeros(1)
    d, dt, ht = relu2_grad_fp8(g, p, torch.tensor([2.0**10]), amax, out_dtype=torch.float32, h_scale=torch.tensor([8.0]),
                               block_n=32, block_h=16, num_warps=1)
    want = (g * 2 * p.clamp(min=0) * 2**10).clamp(-57344, 57344)
    out["d"] = [(d - want).abs().max().item(), (dt - want.t()).abs().max().item(), amax.item(),
                (g * 2 * p.clamp(min=0)).abs().max().item()]
    out["ht"] = [list(ht.shape), (ht - yt).abs().max().item()]  # the forward's transposed cast, from the gradient pass
    d2, dt2, none = relu2_grad_fp8(g, p, torch.tensor([2.0**10]), torch.zeros(1), out_dtype=torch.float32,
                                   block_n=32, block_h=16, num_warps=1)
    out["no_ht"] = [none is None, (d2 - d).abs().max().item(), (dt2 - dt).abs().max().item()]
    print(json.dumps(out))
""")


def test_kernels_in_the_triton_interpreter_match_the_references(run_interpreted):
    done, r = run_interpreted(INTERPRETED)
    assert done.returncode == 0, done.stderr[-2000:]
    h_err, ht_err, h_amax, h_max = r["h"]
    assert h_err == 0 and ht_err == 0 and h_amax == pytest.approx(h_max, rel=1e-6)
    assert r["kept"] == 1e9
    assert r["modes"] == [True, 0.0]  # the row-major copy alone: the same values
    d_err, dt_err, d_amax, d_max = r["d"]
    assert d_err == 0 and dt_err == 0 and d_amax == pytest.approx(d_max, rel=1e-6)
    assert r["ht"] == [[200, 70], 0.0]
    assert r["no_ht"] == [True, 0.0, 0.0]


def test_ops_on_cpu_raise_their_slot_of_the_state():
    p, g = torch.randn(8, 16), torch.randn(8, 16)
    state = torch.tensor([[1.0, 1.0], [0.5, 0.0]])
    y = torch.ops.speedrun.relu2_fp8(p, torch.tensor([4.0]), state)
    ref = relu2_fp8_reference(p, torch.tensor([4.0]))
    assert torch.equal(y.float(), ref[0].float())
    assert state[1, 0].item() == max(0.5, ref[2].item()) and state[1, 1].item() == 0.0 and state[0].tolist() == [1, 1]
    d, dt, ht = torch.ops.speedrun.relu2_grad_fp8(g, p, torch.tensor([2.0]), state, torch.tensor([4.0]))
    dref = relu2_grad_fp8_reference(g, p, torch.tensor([2.0]))
    assert torch.equal(d.float(), dref[0].float()) and torch.equal(dt.float(), dref[1].float())
    assert ht.dtype == E4M3 and torch.equal(ht.float(), ref[1].float())  # the forward's cast at its scale, transposed
    assert state[1, 1].item() == dref[2].item() and state[1, 0].item() == max(0.5, ref[2].item())


def _mlp_inputs(seed=0, N=96, D=64, H=256):
    g = torch.Generator().manual_seed(seed)
    x = F.rms_norm(torch.randn(N, D, generator=g), (D,)).requires_grad_()
    w_fc = ((torch.rand(H, D, generator=g) * 2 - 1) * 3**0.5 * 0.5 * D**-0.5).requires_grad_()
    w_proj = (torch.randn(D, H, generator=g) * 0.02).requires_grad_()
    return x, w_fc, w_proj, torch.randn(N, D, generator=g) * 1e-3


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_delayed_mlp_tracks_the_float32_mlp_and_records_its_maxima():
    pytest.importorskip("triton")  # not needed on CPU, but the ops' module imports it when present
    x, w_fc, w_proj, g = _mlp_inputs()
    try:
        delayed_fp8_mlp(x[:16], w_fc, w_proj, torch.zeros(2, 2))
    except RuntimeError as e:
        pytest.skip(f"torch {torch.__version__} has no float8 _scaled_mm on CPU ({str(e)[:80]})")
    pre = x @ w_fc.T
    h = pre.relu().square()
    ref = h @ w_proj.T
    state = torch.zeros(2, 2)
    errs = []
    for step in range(2):  # step 0 casts at the fallback scales; step 1 at the maxima step 0 measured
        for t in (x, w_fc, w_proj):
            t.grad = None
        y = delayed_fp8_mlp(x, w_fc, w_proj, state)
        y.backward(g)
        got = (y.detach().float(), x.grad.float(), w_fc.grad, w_proj.grad)
        measured = state[1].clone()
        state[0], state[1] = state[1].clone(), 0.0  # the trainer's roll
        errs.append(got)
    for t in (x, w_fc, w_proj):
        t.grad = None
    ref.backward(g)
    d = (g @ w_proj).detach() * 2 * pre.detach().relu()
    assert measured[0].item() == pytest.approx(h.max().item(), rel=0.05)  # of the FP8 c_fc output: within its rounding
    assert measured[1].item() == pytest.approx(d.abs().max().item(), rel=0.1)
    want = (ref.detach(), x.grad.clone(), w_fc.grad.clone(), w_proj.grad.clone())
    delayed = [_rel(a, b) for a, b in zip(errs[1], want)]
    # The dynamic path (each tensor's own maximum) on the same inputs: the FP8 rounding error to match.
    from speedrun.model.fp8 import dynamic_fp8_linear

    for t in (x, w_fc, w_proj):
        t.grad = None
    y = dynamic_fp8_linear(F.relu(dynamic_fp8_linear(x, w_fc)).square(), w_proj)
    y.backward(g)
    dynamic = [_rel(a, b) for a, b in zip((y.detach().float(), x.grad.float(), w_fc.grad, w_proj.grad), want)]
    assert all(d < 1.1 * e + 0.005 and d < 0.12 for d, e in zip(delayed, dynamic)), (delayed, dynamic)


def test_recipe_switch_and_model_path():
    assert load_recipe("fast").fp8_mlp_scaling == load_recipe("fast_1gpu").fp8_mlp_scaling == "delayed"
    assert load_recipe("record21").fp8_mlp_scaling == "dynamic"  # the default; record21 has no FP8 MLP
    with pytest.raises(RecipeError, match="fp8_mlp_scaling='static' must be dynamic or delayed"):
        load_recipe("fast", ["fp8_mlp_scaling='static'"])
    # fast with its FP8 MLP off (as some GPU tests ask) stays valid: the scaling then has nothing to scale
    assert load_recipe("fast", ["fp8_mlp=false"]).fp8_mlp_scaling == "delayed"
    from speedrun.model.gpt import GPT

    r = load_recipe("tiny", ["fp8_mlp=true", "fp8_mlp_scaling='delayed'"])
    model = GPT(r)
    states = [n for n, _ in model.named_buffers() if n.endswith("fp8_amax")]
    assert len(states) == sum(b.mlp is not None for b in model.blocks) and "blocks.1.mlp.fp8_amax" in model.state_dict()
    assert not [n for n, _ in GPT(load_recipe("tiny", ["fp8_mlp=true"])).named_buffers() if n.endswith("fp8_amax")]
    mlp = model.blocks[1].mlp
    mlp.fp8_amax[1] = torch.tensor([3.0, 4.0])
    model.roll_fp8_amax()
    assert mlp.fp8_amax.tolist() == [[3.0, 4.0], [0.0, 0.0]]


def test_train_step_rolls_the_maxima_after_the_optimisers(monkeypatch):
    from speedrun import step as step_module
    from speedrun.build import build_model, build_optimizers
    from speedrun.plan import make_plan

    r = load_recipe("tiny", ["fp8_mlp=true", "fp8_mlp_scaling='delayed'", "steps=2", "warmup_steps=0"])
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    opts = build_optimizers(model, r)
    order = []
    monkeypatch.setattr(step_module, "optimizer_step", lambda *a, **k: order.append("optimisers"))
    monkeypatch.setattr(type(model), "roll_fp8_amax", lambda self, world_size: order.append(("roll", world_size)))
    tokens = torch.randint(0, r.vocab_size, (r.seq_len + 1,))
    step_module.train_step(model, [(tokens[:-1].int(), tokens[1:].long())], opts, 0, model.window(0), r, 1)
    assert order == ["optimisers", ("roll", 1)]


def test_ranks_roll_the_maxima_over_all_ranks(tmp_path):
    """With 2 gloo ranks each rank's measured maxima become the maxima over both ranks (so all cast with the same
    scales). Power-of-two scales hide most differences in a short training run (tests/test_distributed.py), so the
    ranks here measure clearly different values."""
    script = tmp_path / "roll.py"
    script.write_text(textwrap.dedent('''
        import torch, torch.distributed as dist
        from speedrun.model.gpt import GPT
        from speedrun.recipe import load_recipe
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        model = GPT(load_recipe("tiny", ["fp8_mlp=true", "fp8_mlp_scaling='delayed'"]))
        mlp = model.blocks[1].mlp
        mlp.fp8_amax[1] = torch.tensor([[3.0, 0.5], [1.0, 7.0]][rank])
        model.roll_fp8_amax(2)
        if rank == 1:
            assert mlp.fp8_amax.tolist() == [[3.0, 7.0], [0.0, 0.0]], mlp.fp8_amax.tolist()
            print("rolled over ranks")
        dist.destroy_process_group()
    '''))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "rolled over ranks" in proc.stdout, proc.stderr[-2000:]


def test_compiled_delayed_mlp_equals_eager_and_its_maxima_reach_the_state():
    """The ops write the state without declaring it (see the kernels' module): under torch.compile the writes must
    still land in the buffer itself, and the compiled function must compute what the eager one does."""
    x, w_fc, w_proj, g = _mlp_inputs()
    try:
        delayed_fp8_mlp(x[:16], w_fc, w_proj, torch.zeros(2, 2))
    except RuntimeError as e:
        pytest.skip(f"torch {torch.__version__} has no float8 _scaled_mm on CPU ({str(e)[:80]})")
    results = []
    for run in (torch.compile(delayed_fp8_mlp, dynamic=False, fullgraph=True), delayed_fp8_mlp):
        for t in (x, w_fc, w_proj):
            t.grad = None
        state = torch.tensor([[4.0, 1e-3], [0.0, 0.0]])
        y = run(x, w_fc, w_proj, state)
        y.backward(g)
        results.append((y.detach(), x.grad.clone(), w_fc.grad.clone(), w_proj.grad.clone(), state))
    (*compiled, c_state), (*eager, e_state) = results
    assert e_state[1, 0] > 0 and e_state[1, 1] > 0 and e_state[0, 0] == 4.0  # the previous row is only read
    assert torch.equal(c_state, e_state)
    assert all(torch.equal(a, b) for a, b in zip(compiled, eager))


def test_model_in_training_takes_the_delayed_path_and_stays_close_to_the_plain_mlp():
    """In training, fp8_mlp_scaling = delayed sends every MLP through DelayedFP8MLP (its state fills); the loss moves
    by FP8 rounding alone; evaluation stays plain."""
    from speedrun.model.gpt import GPT

    model = GPT(load_recipe("tiny", ["fp8_mlp=true", "fp8_mlp_scaling='delayed'", "fp8_head=false",
                                     "fused_head_loss=false"]))
    mlps, x, y = mlp_test_batch(model)
    try:
        fp8_loss = model.train()(x, y, 2)
    except RuntimeError as e:
        pytest.skip(f"torch {torch.__version__} has no float8 _scaled_mm on CPU ({str(e)[:80]})")
    fp8_loss.backward()
    assert all(m.fp8_amax[1, 0] > 0 and m.fp8_amax[1, 1] > 0 for m in mlps)
    model.roll_fp8_amax()
    before = [m.fp8_amax.clone() for m in mlps]
    plain_loss = model.eval()(x, y, 2)
    assert all(torch.equal(m.fp8_amax, b) for m, b in zip(mlps, before))  # evaluation neither casts nor measures
    assert fp8_loss.item() != plain_loss.item()
    assert abs(fp8_loss.item() - plain_loss.item()) < 2e-3 * plain_loss.item()
