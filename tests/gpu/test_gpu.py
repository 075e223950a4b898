"""GPU checks (skipped without CUDA): FP8 head vs bf16 matmul, FlexAttention vs the dense reference, the compiled
flex model vs the dense model, the soft-capped cross-entropy kernel vs its reference and the fused head + loss op
vs the unfused FP8 head (each also with multi-token prediction), the FP8 MLP vs bf16, and the byte transpose vs
torch's. Run on the GPU machine: `pytest -q tests/gpu -s` prints the errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from speedrun.data.tokenizer import EOT
from speedrun.kernels.softcap_ce import softcap_cross_entropy_reference, softcap_cross_entropy_with_grad
from speedrun.kernels.transpose import transposed_copy
from speedrun.model.attention import BlockLists, dense_attention, dense_mask, flex_block_mask
from speedrun.model.fp8 import fp8_linear, fp8_softcap_cross_entropy, fp8_supported
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# a 4-layer model at a 4,096-token row: the compiled-model checks' size
SMALL_MODEL = ["seq_len=4096", "val_seq_len=4096", "num_layers=4", "window_pattern='LSSL'", "no_attn_layers=[]",
               "value_embeds=2", "batch_tokens=4096"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def random_docs(T: int, mean_doc: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    toks = torch.randint(0, EOT, (T,), generator=g)
    starts = torch.randint(0, T, (max(1, T // mean_doc),), generator=g)
    toks[starts] = EOT
    toks[0] = EOT
    return toks.cuda()


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_fp8_head_matches_bf16_matmul():
    torch.manual_seed(0)
    N, K, M = 4096, 768, 50304
    x = F.rms_norm(torch.randn(N, K, device="cuda"), (K,)).bfloat16().requires_grad_()
    bound = 3**0.5 * 0.5 * K**-0.5
    w = torch.empty(M, K, device="cuda").uniform_(-bound, bound).requires_grad_()
    g = torch.randn(N, M, device="cuda").bfloat16() * 1e-4  # the head's output gradients are tiny (mean CE)
    y = fp8_linear(x, w, 2.0, 512.0, 524288.0)
    y.backward(g)
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    y_ref = F.linear(x, w.bfloat16())
    y_ref.backward(g)
    errs = dict(out=rel_err(y, y_ref), grad_x=rel_err(gx, x.grad), grad_w=rel_err(gw, w.grad))
    print(f"\nFP8 head vs bf16 (N={N}, K={K}, M={M}): relative errors {errs}")
    assert y.dtype == torch.bfloat16 and gw.dtype == torch.float32 and gw.shape == w.shape
    assert errs["out"] < 0.08 and errs["grad_x"] < 0.08 and errs["grad_w"] < 0.08


@pytest.mark.parametrize("window", [1, 3, 7, 14])
def test_flex_attention_matches_dense_reference(window):
    from torch.nn.attention.flex_attention import flex_attention

    T, H, D = 4096, 6, 128
    tokens = random_docs(T, 700, seed=window)
    q, k, v = (torch.randn(1, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    lists = BlockLists.build(tokens, 128)
    flex = torch.compile(flex_attention, dynamic=False)
    y = flex(q, k, v, block_mask=flex_block_mask(lists, torch.tensor(window, device="cuda")), scale=0.12)
    y_ref = dense_attention(q.float(), k.float(), v.float(), dense_mask(lists, window), 0.12)
    err = rel_err(y, y_ref)
    print(f"\nFlexAttention vs dense fp32 reference, window {window} blocks: relative error {err:.2e}")
    assert err < 1e-2


@pytest.mark.parametrize("features", [[], ["smear=true", "attn_gate=true", "no_mlp_layers=[0]", "key_offset=true"]],
                         ids=["record21", "fast"])
def test_compiled_flex_model_matches_dense_model(features):
    r = load_recipe("record21", [*SMALL_MODEL, *features])
    from speedrun.model.gpt import GPT

    torch.manual_seed(0)
    flex = GPT(r, attention="flex").cuda()
    with torch.no_grad():  # the fast recipe's gates and smear start as constants: give them values that matter
        for name, p in flex.named_parameters():
            if name.endswith("gate_w") or name == "smear_lambda":
                p.normal_(0.5, 0.5)
    dense = GPT(r, attention="dense").cuda()
    dense.load_state_dict(flex.state_dict())
    for m in (flex, dense):
        m.lm_head.fp8_scales = None
        torch.nn.init.normal_(m.lm_head.weight, std=0.02)  # non-zero head so logits differ by position
    dense.lm_head.weight.data.copy_(flex.lm_head.weight.data)
    tokens = random_docs(r.seq_len + 1, 600, seed=1)
    inputs, targets = tokens[:-1].int(), tokens[1:].long()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss_flex = torch.compile(flex, dynamic=False)(inputs, targets, torch.tensor(7, device="cuda"))
        loss_dense = dense(inputs, targets, 7)
    print(f"\ncompiled flex model loss {loss_flex.item():.5f} vs dense model loss {loss_dense.item():.5f}")
    assert abs(loss_flex.item() - loss_dense.item()) < 2e-2 * abs(loss_dense.item())


@pytest.mark.parametrize("grad_dtype", [torch.float32, torch.bfloat16, torch.float8_e5m2], ids=str)
def test_softcap_cross_entropy_kernel_matches_reference(grad_dtype):
    torch.manual_seed(0)
    N, V = 2048, 50304
    logits = (torch.randn(N, V, device="cuda") * 10).bfloat16()
    targets = torch.randint(0, V, (N,), device="cuda")
    targets[0], targets[1] = 0, V - 1
    scale = 524288.0 / N
    losses, grad = softcap_cross_entropy_with_grad(logits, targets, 30.0, 7.5, grad_scale=scale, grad_dtype=grad_dtype,
                                                   fast_sigmoid=False)  # the exact sigmoid; the fast one: below
    want_losses, want_grad = softcap_cross_entropy_reference(logits, targets, 30.0, 7.5, grad_scale=scale)
    loss_err = (losses - want_losses).abs().max().item()
    # every entry within one step of the output format at its magnitude (e5m2: 2 mantissa bits)
    step = {torch.float32: 1e-5, torch.bfloat16: 2**-7, torch.float8_e5m2: 2**-2}[grad_dtype]
    rel = ((grad.float() - want_grad).abs() - step * want_grad.abs()).max().item()
    print(f"\nsoftcap CE kernel ({grad_dtype}): max loss error {loss_err:.2e}, grad beyond one step {rel:.2e}")
    assert grad.dtype == grad_dtype and loss_err < 1e-4
    assert rel <= 1e-6 * scale


@pytest.mark.parametrize("num_extra", [0, 2])
def test_softcap_cross_entropy_kernel_fast_sigmoid_within_its_error_bound(num_extra):
    """The default GPU kernel (sigmoid from the approximate tanh) against the exact reference, entry by entry, within
    the bound the tanh's error gives (speedrun/kernels/softcap_ce.py): |ds| <= 2^-12 moves z by at most cap 2^-12, a
    row's loss by twice that, p by a factor within exp(+-2 cap 2^-12), and s(1 - s) by at most |ds|."""
    from speedrun.model.mtp import mtp_targets

    torch.manual_seed(0)
    N, V, cap, div = 2048, 50304, 30.0, 7.5
    logits = (torch.randn(N, V, device="cuda") * 10).bfloat16()
    targets = random_docs(N, 300, seed=6).long()
    extra = mtp_targets(targets, num_extra) if num_extra else None
    weights = torch.tensor([0.5, 0.25], device="cuda") if num_extra else None
    scale = 524288.0 / N
    losses, grad = softcap_cross_entropy_with_grad(logits, targets, cap, div, grad_scale=scale,
                                                   grad_dtype=torch.float32, extra=extra, extra_weights=weights)
    want_losses, want_grad = softcap_cross_entropy_reference(logits, targets, cap, div, scale, extra, weights)
    ds = 2.0**-12 * 1.01
    dz = cap * ds
    s = torch.sigmoid(logits.float() / div)
    z = cap * s
    p = torch.softmax(z, dim=-1)
    present = torch.where(extra >= 0, weights[None], 0.0) if num_extra else None
    w_sum = 1 + (present.sum(-1, keepdim=True) if num_extra else torch.zeros_like(p[:, :1]))
    onehots = torch.zeros_like(p).scatter_add_(1, targets[:, None], torch.ones_like(p[:, :1]))
    if num_extra:
        onehots.scatter_add_(1, extra.clamp(min=0), present)
    ratio = torch.exp(torch.tensor(2 * dz)).item() - 1  # p's largest relative change
    # d = scale cap/div (w_sum p - onehots) s(1 - s): the change through p, and through s(1 - s); float32's own slack
    k = scale * cap / div
    bound = k * (ratio * w_sum * p * (s * (1 - s) + ds) + (w_sum * p - onehots).abs() * ds)
    bound = bound + 1e-5 * want_grad.abs() + 1e-6 * scale
    excess = ((grad - want_grad).abs() - bound).max().item()
    loss_err = (losses - want_losses).abs()
    print(f"\nsoftcap CE kernel, fast sigmoid, {num_extra} extra targets: max loss error {loss_err.max().item():.2e} "
          f"(bound {2 * dz * w_sum.max().item():.2e}), mean loss error {(losses - want_losses).mean().item():+.2e}, "
          f"grad rel. error {rel_err(grad, want_grad):.2e}, worst grad entry vs its bound {excess:+.2e}")
    assert loss_err.max().item() <= 2 * dz * w_sum.max().item() + 1e-4
    assert abs((losses - want_losses).mean().item()) < 1e-3
    assert excess <= 0
    # the e5m2 gradient the head uses: each entry within one e5m2 step (2 mantissa bits) of the exact value, as the
    # exact kernel's (above), with the bound's slack
    g8 = softcap_cross_entropy_with_grad(logits, targets, cap, div, grad_scale=scale, grad_dtype=torch.float8_e5m2,
                                         extra=extra, extra_weights=weights)[1]
    assert ((g8.float() - want_grad).abs() - 2**-2 * want_grad.abs() - 1.25 * bound).max().item() <= 2**-15


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_fused_head_loss_matches_unfused_fp8_head():
    torch.manual_seed(0)
    N, K, M = 8192, 768, 50304
    x = F.rms_norm(torch.randn(N, K, device="cuda"), (K,)).bfloat16().requires_grad_()
    w = (torch.randn(M, K, device="cuda") * 0.02).requires_grad_()
    targets = torch.randint(0, 50257, (N,), device="cuda")
    scales = (2.0, 512.0, 524288.0)
    loss = fp8_softcap_cross_entropy(x, w, targets, *scales, 30.0, 7.5) / 2  # a non-unit incoming gradient
    loss.backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    logits = 30.0 * torch.sigmoid(fp8_linear(x, w, *scales).float() / 7.5)
    loss_ref = F.cross_entropy(logits, targets) / 2
    loss_ref.backward()
    errs = dict(loss=abs(loss.item() - loss_ref.item()), grad_x=rel_err(gx, x.grad), grad_w=rel_err(gw, w.grad))
    print(f"\nfused FP8 head + loss vs unfused: {errs}")
    assert gx.dtype == torch.bfloat16 and gw.dtype == torch.float32 and gw.shape == w.shape
    assert errs["loss"] < 1e-3 and errs["grad_x"] < 0.02 and errs["grad_w"] < 0.02


@pytest.mark.parametrize("shape", [(49152, 12288), (2000, 50304), (129, 300)], ids=str)
def test_transposed_copy_is_torchs_bit_for_bit(shape):
    """The head's e5m2 gradient copy (the sampled head's shape, a partial tile, a slice of a wider tensor)."""
    raw = torch.randint(0, 256, (shape[0], shape[1] + 5), dtype=torch.uint8, device="cuda")
    for t in (raw[:, :shape[1]].contiguous().view(torch.float8_e5m2), raw[:, 5:]):
        got = transposed_copy(t)
        assert got.dtype == t.dtype and got.is_contiguous()
        assert torch.equal(got.view(torch.uint8), t.view(torch.uint8).t().contiguous())


def fused_and_unfused_models(r, seed: int):
    """([model, twin], inputs, targets): two FlexAttention models of recipe r on the GPU with the same weights (the
    head made non-zero), the twin's recipe with fused_head_loss off; a row of random documents."""
    from speedrun.model.gpt import GPT

    torch.manual_seed(0)
    models = [GPT(r, attention="flex").cuda() for _ in range(2)]
    torch.nn.init.normal_(models[0].lm_head.weight, std=0.02)
    models[1].load_state_dict(models[0].state_dict())
    models[1].recipe = dataclasses.replace(r, fused_head_loss=False)
    tokens = random_docs(r.seq_len + 1, 600, seed=seed)
    return models, tokens[:-1].int(), tokens[1:].long()


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_compiled_model_with_fused_head_loss_matches_unfused():
    # the head and loss alone differ: fast's FP8 MLP and MTP off, as when this was first checked on the GPU
    r = load_recipe("fast", [*SMALL_MODEL, "fused_head_loss=true", "fp8_mlp=false", "mtp_weights=[]"])
    models, inputs, targets = fused_and_unfused_models(r, seed=2)
    losses, grads = [], []
    for m in models:
        assert m.fused_head_loss_active() == m.recipe.fused_head_loss
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.compile(m, dynamic=False)(inputs, targets, torch.tensor(7, device="cuda"))
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.float() for n, p in m.named_parameters() if p.grad is not None})
    errs = {n: rel_err(grads[0][n], grads[1][n]) for n in ("lm_head.weight", "blocks.3.mlp.c_proj.weight", "embed.weight")
            if n in grads[1]}
    print(f"\ncompiled model, fused head loss {losses[0]:.5f} vs unfused {losses[1]:.5f}; grad errors {errs}")
    assert abs(losses[0] - losses[1]) < 1e-3 * losses[1]
    assert errs and all(e < 0.03 for e in errs.values())


def record_mlp_inputs():
    """(x, w_fc, w_proj, dy) for an MLP at the record's sizes, 8,192 tokens: x RMS-normed bf16, c_fc with the
    model's uniform init, c_proj small and non-zero, all leaves with gradients; dy a small bf16 output gradient."""
    torch.manual_seed(0)
    N, D, H = 8192, 768, 3072
    x = F.rms_norm(torch.randn(N, D, device="cuda"), (D,)).bfloat16().requires_grad_()
    bound = 3**0.5 * 0.5 * D**-0.5
    w_fc = torch.empty(H, D, device="cuda").uniform_(-bound, bound).requires_grad_()
    w_proj = (torch.randn(D, H, device="cuda") * 0.01).requires_grad_()
    return x, w_fc, w_proj, torch.randn(N, D, device="cuda").bfloat16() * 1e-3


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
@pytest.mark.parametrize("compiled", [False, True])
def test_dynamic_fp8_mlp_matches_bf16_mlp(compiled):
    """The fp8_mlp path (both MLP matmuls and their gradients in FP8, scales from each operand's maximum) against
    the same MLP in bf16, at the record's sizes; compiled, the casts fuse with the ReLU^2."""
    from speedrun.model.fp8 import dynamic_fp8_linear

    x, w_fc, w_proj, g = record_mlp_inputs()

    def fp8_mlp(x, w_fc, w_proj):
        return dynamic_fp8_linear(F.relu(dynamic_fp8_linear(x, w_fc)).square(), w_proj)

    def bf16_mlp(x, w_fc, w_proj):
        return F.linear(F.relu(F.linear(x, w_fc.bfloat16())).square(), w_proj.bfloat16())

    run = torch.compile(fp8_mlp, dynamic=False) if compiled else fp8_mlp
    y = run(x, w_fc, w_proj)
    y.backward(g)
    got = (y.detach(), x.grad.clone(), w_fc.grad.clone(), w_proj.grad.clone())
    x.grad = w_fc.grad = w_proj.grad = None
    y_ref = bf16_mlp(x, w_fc, w_proj)
    y_ref.backward(g)
    errs = dict(out=rel_err(got[0], y_ref), grad_x=rel_err(got[1], x.grad), grad_w_fc=rel_err(got[2], w_fc.grad),
                grad_w_proj=rel_err(got[3], w_proj.grad))
    print(f"\nFP8 MLP ({'compiled' if compiled else 'eager'}) vs bf16 (N={len(x)}): relative errors {errs}")
    assert got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32 and got[2].shape == w_fc.shape
    assert all(e < 0.12 for e in errs.values())


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
@pytest.mark.parametrize("grad", [False, True])
def test_relu2_fp8_kernels_match_their_references(grad):
    """The delayed-scaling MLP's cast kernels against the PyTorch references, FP8 values and running maximum, at a
    row count that is no multiple of the blocks."""
    from speedrun.kernels.relu2_fp8 import relu2_fp8, relu2_fp8_reference, relu2_grad_fp8, relu2_grad_fp8_reference

    torch.manual_seed(0)
    p = (torch.randn(4103, 3072, device="cuda") * 2).bfloat16()
    g = (torch.randn(4103, 3072, device="cuda") * 1e-4).bfloat16()
    g[5, 7] = 10.0  # saturates at this scale
    scale = torch.tensor([2.0**16 if grad else 16.0], device="cuda")
    amax = torch.tensor([0.5], device="cuda")
    h_scale = torch.tensor([16.0], device="cuda")
    y, yt, ht = relu2_grad_fp8(g, p, scale, amax, h_scale=h_scale) if grad else (*relu2_fp8(p, scale, amax), None)
    ry, ryt, ramax = relu2_grad_fp8_reference(g, p, scale) if grad else relu2_fp8_reference(p, scale)
    if grad:  # the backward's transposed ReLU² copy: bit for bit the forward kernel's transposed cast
        assert torch.equal(ht, relu2_fp8(p, h_scale, None)[1])
    else:  # the model's forward call: the row-major copy alone
        assert torch.equal(relu2_fp8(p, scale, None, cols=False)[0], y)
    same = (y.float() == ry.float()).float().mean().item()
    print(f"\nrelu2 {'grad ' if grad else ''}FP8 kernel: {same:.6f} of the values equal to the reference's; "
          f"amax {amax.item():.6g} vs {ramax.item():.6g}")
    print(f"transposed copy: {(yt.float() == ryt.float()).float().mean().item():.6f} of the values equal")
    assert y.dtype == ry.dtype and yt.shape == (3072, 4103) and torch.equal(yt, y.t().contiguous())
    assert same > 0.9999 and rel_err(y, ry) < 1e-3
    assert amax.item() == pytest.approx(max(0.5, ramax.item()), rel=1e-6)


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
@pytest.mark.parametrize("compiled", [False, True])
def test_delayed_fp8_mlp_matches_bf16_mlp(compiled):
    """fp8_mlp_scaling = delayed against the bf16 MLP at the record's sizes, at the second step (the first measures
    the maxima the second casts with); compiled, the kernels' maxima must still reach the state buffer."""
    from speedrun.model.fp8 import delayed_fp8_mlp

    x, w_fc, w_proj, g = record_mlp_inputs()
    state = torch.zeros(2, 2, device="cuda")
    run = torch.compile(delayed_fp8_mlp, dynamic=False) if compiled else delayed_fp8_mlp
    for _ in range(2):
        x.grad = w_fc.grad = w_proj.grad = None
        y = run(x, w_fc, w_proj, state)
        y.backward(g)
        measured = state[1].clone()
        state[0], state[1] = state[1].clone(), 0.0  # the trainer's roll
    got = (y.detach(), x.grad.clone(), w_fc.grad.clone(), w_proj.grad.clone())
    x.grad = w_fc.grad = w_proj.grad = None
    y_ref = F.linear(F.relu(F.linear(x, w_fc.bfloat16())).square(), w_proj.bfloat16())
    y_ref.backward(g)
    errs = dict(out=rel_err(got[0], y_ref), grad_x=rel_err(got[1], x.grad), grad_w_fc=rel_err(got[2], w_fc.grad),
                grad_w_proj=rel_err(got[3], w_proj.grad))
    print(f"\ndelayed FP8 MLP ({'compiled' if compiled else 'eager'}) vs bf16: relative errors {errs}; "
          f"maxima {measured.tolist()}")
    assert measured[0] > 0 and measured[1] > 0
    assert all(e < 0.12 for e in errs.values())


def compiled_model_variants(settings: list[str], flag: str, prime: bool = False):
    """(losses, relative gradient errors) of a compiled 4-layer `fast` model with the `settings`, against the same
    weights with every module's `flag` attribute cleared to None (the MLP's plain bf16 path, Triton attention...).
    `prime`: one untimed forward and backward of the first model first, its FP8 maxima then rolled into place."""
    from speedrun.model.gpt import GPT

    r = load_recipe("fast", [*SMALL_MODEL, "mtp_weights=[]", *settings])  # next-token loss only: the MLP differs
    torch.manual_seed(0)
    models = [GPT(r, attention="flex").cuda() for _ in range(2)]
    for name, p in models[0].named_parameters():  # give the zero-initialised projections values
        if name.endswith("c_proj.weight") or name == "lm_head.weight":
            torch.nn.init.normal_(p, std=0.02)
    models[1].load_state_dict(models[0].state_dict())
    for m in models[1].modules():
        if hasattr(m, flag):
            setattr(m, flag, None)
    tokens = random_docs(r.seq_len + 1, 600, seed=3)
    inputs, targets = tokens[:-1].int(), tokens[1:].long()
    losses, grads = [], []
    for i, m in enumerate(models):
        for t in m.embedding_tables():
            t.bfloat16()
        if prime and i == 0:
            torch.compile(m, dynamic=False)(inputs, targets, torch.tensor(7, device="cuda")).backward()
            m.roll_fp8_amax()
            m.zero_grad(set_to_none=True)
        loss = torch.compile(m, dynamic=False)(inputs, targets, torch.tensor(7, device="cuda"))
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.float() for n, p in m.named_parameters() if p.grad is not None})
    errs = {n: rel_err(grads[0][n], grads[1][n]) for n in ("blocks.1.mlp.c_fc.weight", "blocks.3.mlp.c_proj.weight",
                                                          "blocks.2.attn.qkv_w")}
    return losses, errs


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_compiled_model_with_fp8_mlp_close_to_bf16_mlp():
    losses, errs = compiled_model_variants(["fp8_mlp=true", "fp8_mlp_scaling='dynamic'"], "fp8_dynamic")
    print(f"\ncompiled model, FP8 MLP loss {losses[0]:.5f} vs bf16 MLP {losses[1]:.5f}; grad errors {errs}")
    assert abs(losses[0] - losses[1]) < 5e-3 * losses[1]
    assert all(e < 0.15 for e in errs.values())


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_compiled_model_with_delayed_fp8_mlp_close_to_bf16_mlp():
    losses, errs = compiled_model_variants(["fp8_mlp=true", "fp8_mlp_scaling='delayed'"], "fp8_dynamic", prime=True)
    print(f"\ncompiled model, delayed FP8 MLP loss {losses[0]:.5f} vs bf16 MLP {losses[1]:.5f}; grad errors {errs}")
    assert abs(losses[0] - losses[1]) < 5e-3 * losses[1]
    assert all(e < 0.15 for e in errs.values())


# --- multi-token prediction --------------------------------------------------------------------------------------------
def test_softcap_cross_entropy_kernel_with_extra_targets_matches_reference():
    from speedrun.model.mtp import mtp_targets

    torch.manual_seed(0)
    N, V = 2048, 50304
    logits = (torch.randn(N, V, device="cuda") * 10).bfloat16()
    targets = random_docs(N, 300, seed=4).long()
    extra = mtp_targets(targets, 2)
    weights = torch.tensor([0.5, 0.25], device="cuda")
    exact = dict(grad_scale=3.0, grad_dtype=torch.float32, fast_sigmoid=False)
    losses, grad = softcap_cross_entropy_with_grad(logits, targets, 30.0, 7.5, extra=extra, extra_weights=weights,
                                                   **exact)
    want_losses, want_grad = softcap_cross_entropy_reference(logits, targets, 30.0, 7.5, 3.0, extra, weights)
    plain_losses, plain_grad = softcap_cross_entropy_with_grad(logits, targets, 30.0, 7.5, **exact)
    zero = softcap_cross_entropy_with_grad(logits, targets, 30.0, 7.5, extra=extra, extra_weights=weights * 0, **exact)
    errs = dict(loss=(losses - want_losses).abs().max().item(), grad=rel_err(grad, want_grad))
    print(f"\nsoftcap CE kernel with 2 extra targets: {errs}")
    assert errs["loss"] < 1e-4 and errs["grad"] < 1e-5
    assert torch.equal(zero[0], plain_losses) and torch.equal(zero[1], plain_grad)


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_fused_head_loss_with_mtp_matches_plain_path():
    """The fused op with extra targets against the plain path (FP8 head, soft cap, mtp_cross_entropy); then the
    weights changed in place, as the trainer does, and compared again."""
    from speedrun.model.mtp import mtp_cross_entropy, mtp_targets

    torch.manual_seed(0)
    N, K, M = 8192, 768, 50304
    x = F.rms_norm(torch.randn(N, K, device="cuda"), (K,)).bfloat16().requires_grad_()
    w = (torch.randn(M, K, device="cuda") * 0.02).requires_grad_()
    targets = random_docs(N, 500, seed=5).long()
    extra = mtp_targets(targets, 2)
    weights = torch.tensor([0.5, 0.25], device="cuda")
    scales = (2.0, 512.0, 524288.0)
    for values in ([0.5, 0.25], [0.1, 0.0]):
        weights.copy_(torch.tensor(values))
        loss = fp8_softcap_cross_entropy(x, w, targets, *scales, 30.0, 7.5, extra, weights) / 2
        loss.backward()
        gx, gw = x.grad.clone(), w.grad.clone()
        x.grad = w.grad = None
        logits = 30.0 * torch.sigmoid(fp8_linear(x, w, *scales).float() / 7.5)
        loss_ref = mtp_cross_entropy(logits, targets, extra, weights) / 2
        loss_ref.backward()
        errs = dict(loss=abs(loss.item() - loss_ref.item()), grad_x=rel_err(gx, x.grad), grad_w=rel_err(gw, w.grad))
        x.grad = w.grad = None
        print(f"\nfused FP8 head + loss with MTP weights {values} vs the plain path: loss {loss.item():.5f}, {errs}")
        assert errs["loss"] < 1e-3 and errs["grad_x"] < 0.02 and errs["grad_w"] < 0.02


@pytest.mark.skipif(not fp8_supported(), reason="needs a CUDA GPU with FP8 tensor cores (compute capability >= 8.9)")
def test_compiled_model_with_mtp_fused_matches_unfused_without_recompiling():
    """The MTP weights change between steps (in place, in a buffer): no recompile."""
    import torch._dynamo

    r = load_recipe("fast", [*SMALL_MODEL, "fused_head_loss=true", "fp8_mlp=false",
                             "mtp_weights=[0.5, 0.25]", "steps=100"])
    models, inputs, targets = fused_and_unfused_models(r, seed=6)
    losses = {0: [], 1: []}
    for k, m in enumerate(models):
        # One training run uses one of the two paths: each model alone must not recompile once warm. (The FP8
        # op's inner compiled function is shared, and its first real call differs from later ones in the weight's
        # dispatch keys: it compiles twice in the first two calls, as in the trainer's untimed warm-up.)
        torch._dynamo.reset()
        compiled = torch.compile(m, dynamic=False)
        for step in (0, 0, 25, 50):  # weights 1x (twice: the warm-up), 0.5x, 0
            m.set_step(step)
            with torch.autocast("cuda", dtype=torch.bfloat16), \
                    torch._dynamo.config.patch(error_on_recompile=step > 0):
                loss = compiled(inputs, targets, torch.tensor(7, device="cuda"))
            loss.backward()
            m.zero_grad()
            losses[k].append(loss.item())
    print(f"\ncompiled model with MTP, fused {losses[0]} vs unfused {losses[1]}")
    losses = {k: v[1:] for k, v in losses.items()}  # the second step-0 call on
    assert losses[0][0] > losses[0][1] > losses[0][2]
    for a, b in zip(losses[0], losses[1]):
        assert abs(a - b) < 1e-3 * b
