"""Multi-token prediction on CPU: the extra targets, the plain-path loss against an explicit loop and its gradient
against the closed form, and the model (training loss, eval unchanged, zero weights, the weights buffer, the fused
path's wiring, no recompile when the weights change). The kernel: tests/test_softcap_ce.py; the FP8 op:
tests/test_fp8.py; on the GPU: tests/gpu/test_gpu.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL as SMALL_MODEL

import speedrun.model.gpt as gpt_mod
from speedrun.data.tokenizer import EOT
from speedrun.model.gpt import GPT
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets
from speedrun.optim.schedule import mtp_weights_at
from speedrun.recipe import load_recipe

SMALL = dict(SMALL_MODEL, attn_block_size=32)
WEIGHTS = [0.5, 0.25]


def tokens(T, seed, eot_at=()):
    t = torch.randint(0, EOT, (T,), generator=torch.Generator().manual_seed(seed))
    t[list(eot_at)] = EOT
    return t


def slow_extra(targets, i, s):
    """The target at offset +(s + 1) of position i, or None: past the row's end or past an end of document."""
    T = len(targets)
    if i + s >= T or any(int(targets[m]) == EOT for m in range(i, i + s)):
        return None
    return int(targets[i + s])


# --- the extra targets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_extra", [0, 1, 2, 3])
@pytest.mark.parametrize("T, eot_at", [(40, [0, 7, 8, 20, 38, 39]), (40, []), (2, [0]), (1, [])])
def test_mtp_targets_match_a_slow_loop(num_extra, T, eot_at):
    targets = tokens(T, T + num_extra, eot_at)
    extra = mtp_targets(targets, num_extra)
    assert extra.shape == (T, num_extra) and extra.dtype == torch.int64
    want = [[slow_extra(targets, i, j + 1) for j in range(num_extra)] for i in range(T)]
    assert extra.tolist() == [[-1 if e is None else e for e in row] for row in want]


def test_mtp_targets_stop_at_document_ends():
    #                  0  1  2    3  4  5
    targets = torch.tensor([5, 6, EOT, 7, 8, 9])
    assert mtp_targets(targets, 2).tolist() == [
        [6, EOT],  # the EOT itself is this document's last target: +2 may be it
        [EOT, -1],  # +3 would be token 7, the next document's first
        [-1, -1],  # targets[2] is the EOT: everything after it is the next document
        [8, 9],
        [9, -1],  # row end
        [-1, -1],
    ]


# --- the plain-path loss -----------------------------------------------------------------------------------------------
def explicit_loss(logits, targets, weights):
    """mean over positions i of CE(z_i, targets[i]) + sum_k w_k CE(z_i, targets[i + k - 1]) over present offsets,
    position by position in float64."""
    z = logits.double()
    total = 0.0
    for i in range(len(targets)):
        total = total + F.cross_entropy(z[i], targets[i])
        for j, w in enumerate(weights):
            e = slow_extra(targets, i, j + 1)
            if e is not None:
                total = total + w * F.cross_entropy(z[i], torch.tensor(e))
    return total / len(targets)


def closed_form_grad(logits, targets, weights):
    """((1 + sum_j w_j [present]) softmax(z_i) - onehot(t_i) - sum_j w_j onehot(e_ij)) / T."""
    T = len(targets)
    p = torch.softmax(logits.double(), -1)
    g = torch.zeros_like(p)
    for i in range(T):
        g[i, targets[i]] -= 1
        present = 0.0
        for j, w in enumerate(weights):
            e = slow_extra(targets, i, j + 1)
            if e is not None:
                g[i, e] -= w
                present += w
        g[i] += (1 + present) * p[i]
    return g / T


@pytest.mark.parametrize("weights", [[0.7], [0.5, 0.25], [0.3, 0.2, 0.1]])
def test_mtp_cross_entropy_matches_explicit_loop_and_closed_form_gradient(weights):
    T, V = 33, 50260  # EOT (50256) is a class here
    g = torch.Generator().manual_seed(len(weights))
    logits = (torch.rand(T, V, generator=g) * 30).requires_grad_()
    targets = tokens(T, 3, eot_at=[4, 5, 17, 31])
    targets[10] = targets[11]  # an extra target equal to the next-token one
    extra = mtp_targets(targets, len(weights))
    loss = mtp_cross_entropy(logits, targets, extra, torch.tensor(weights))
    loss.backward()
    want = explicit_loss(logits.detach(), targets, weights)
    assert abs(loss.item() - want.item()) < 1e-5 * want.item()
    torch.testing.assert_close(logits.grad.double(), closed_form_grad(logits.detach(), targets, weights),
                               rtol=1e-4, atol=1e-9)
    assert loss.item() > F.cross_entropy(logits.detach(), targets).item() + 0.1


def test_mtp_cross_entropy_with_zero_weights_is_cross_entropy_bit_for_bit():
    T, V = 64, 1000
    logits = (torch.randn(T, V, generator=torch.Generator().manual_seed(0)) * 5).requires_grad_()
    targets = torch.randint(0, V, (T,))
    targets[[3, 40]] = 999
    loss = mtp_cross_entropy(logits, targets, mtp_targets(targets, 2), torch.zeros(2))
    loss.backward()
    grad, logits.grad = logits.grad, None
    plain = F.cross_entropy(logits, targets)
    plain.backward()
    assert torch.equal(loss, plain) and torch.equal(grad, logits.grad)


# --- the model -------------------------------------------------------------------------------------------------------
def build(weights=WEIGHTS, seed=0, **extra) -> GPT:
    r = load_recipe("tiny", {**SMALL, "mtp_weights": weights, **extra})
    torch.manual_seed(seed)
    model = GPT(r)
    model.lm_head.fp8_scales = None
    with torch.no_grad():  # a non-zero head, so positions' logits differ
        model.lm_head.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed + 1))
    return model


ROW_X, ROW_Y = tokens(256, 1, eot_at=[0, 90]), tokens(256, 2, eot_at=[89, 150, 151, 255])


def test_training_loss_adds_exactly_the_weighted_extra_terms():
    model = build().train()
    model.set_step(0)
    loss = model(ROW_X, ROW_Y, 4)
    logits = model(ROW_X, None, 4)[0].detach()  # the same head output the loss scores
    plain = F.cross_entropy(logits, ROW_Y)
    z = logits.double()
    aux = sum(w * F.cross_entropy(z[i], torch.tensor(e))
              for i in range(256) for j, w in enumerate(WEIGHTS)
              if (e := slow_extra(ROW_Y, i, j + 1)) is not None) / 256
    print(f"loss {loss.item():.5f} = next-token {plain.item():.5f} + extra terms {aux.item():.5f}")
    assert aux > 1
    assert abs(loss.item() - (plain.item() + aux.item())) < 1e-5 * loss.item()


def test_eval_and_no_grad_forward_score_the_next_token_only():
    model = build().train()
    model.set_step(0)
    with torch.no_grad():
        logits = model(ROW_X, None, 4)[0]
        plain = F.cross_entropy(logits, ROW_Y)
        assert torch.equal(model(ROW_X, ROW_Y, 4), plain)  # training mode, no gradients: validation's case
        assert not model.mtp_active()
    model.eval()
    assert not model.mtp_active()
    torch.testing.assert_close(model(ROW_X, ROW_Y, 4), plain)
    assert torch.equal(model(ROW_X, None, 4), logits[None])  # sampling: the same logits


def test_zero_weights_train_exactly_as_the_model_without_mtp():
    """From mtp_end_frac on, the weights are 0: the loss and every gradient are those of the plain model, bit for bit."""
    model, plain = build(), build(weights=[])
    plain.load_state_dict(model.state_dict())
    assert plain.mtp_w is None and not plain.mtp_active()
    model.set_step(model.recipe.steps // 2)  # end_frac 0.5
    assert model.mtp_w.tolist() == [0.0, 0.0] and model.train().mtp_active()
    losses = []
    for m in (model, plain.train()):
        loss = m(ROW_X, ROW_Y, 4)
        loss.backward()
        losses.append(loss)
    assert torch.equal(losses[0], losses[1])
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_set_step_follows_the_mtp_schedule_in_place():
    model = build(weights=[0.6, 0.3, 0.15], mtp_end_frac=0.8)
    buffer = model.mtp_w
    r = model.recipe
    for step in (0, 1, 37, 95, 96, 119):
        model.set_step(step)
        assert model.mtp_w is buffer  # the same tensor: what a compiled graph holds
        want = mtp_weights_at(step, r.steps, r.mtp_weights, r.mtp_end_frac)
        torch.testing.assert_close(model.mtp_w, torch.tensor(want), rtol=1e-6, atol=0)
    assert "mtp_w" not in model.state_dict() and "mtp_start" not in model.state_dict()  # set by the step, not saved
    assert model.mtp_start.tolist() == pytest.approx([0.6, 0.3, 0.15])


def test_fused_path_gets_the_extra_targets_and_the_weights_buffer(monkeypatch):
    """Where the fused head + loss op runs (GPU), the model hands it the extra targets and the weights buffer
    itself, so in-place updates reach it; in eval it gets neither (and is not used)."""
    model = build(fp8_head=True, fused_head_loss=True).train()
    model.lm_head.fp8_scales = (2.0, 512.0, 524288.0)
    calls = []

    def fake_op(x, w, targets, x_s, w_s, grad_s, cap, div, extra=None, extra_weights=None):
        calls.append((targets, extra, extra_weights))
        return x.sum() * 0

    monkeypatch.setattr(gpt_mod, "fp8_softcap_cross_entropy", fake_op)
    monkeypatch.setattr(gpt_mod, "fp8_linear", lambda x, w, *s: F.linear(x, w.type_as(x)))
    model(ROW_X, ROW_Y, 4)
    targets, extra, weights = calls[-1]
    assert torch.equal(extra, mtp_targets(ROW_Y, 2)) and weights is model.mtp_w
    model.mtp_w = None  # a model without MTP calls the op as before
    model(ROW_X, ROW_Y, 4)
    assert calls[-1][1] is None and calls[-1][2] is None


def test_compiled_model_reads_new_weights_without_recompiling():
    """The weights live in a buffer the trainer writes in place: a compiled model sees each step's values and
    compiles once (a recompile would raise here)."""
    import torch._dynamo

    model = build().train()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", dynamic=False)
    got, want = [], []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in (0, 30, 59, 60, 100):
            model.set_step(step)
            got.append(compiled(ROW_X, ROW_Y, 4).item())
            want.append(model(ROW_X, ROW_Y, 4).item())
    torch._dynamo.reset()
    assert got == pytest.approx(want, rel=1e-6)
    assert got[0] > got[1] > got[2] > got[3] == got[4]  # the weights fall to 0 at step 60 of 120
