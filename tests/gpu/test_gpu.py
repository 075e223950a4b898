"""GPU checks (skipped without CUDA): FP8 head vs bf16 matmul, FlexAttention vs the dense reference, the
compiled flex model vs the dense model. Run on the GPU machine: `pytest -q tests/gpu -s` prints the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import BlockLists, dense_attention, dense_mask, flex_block_mask
from speedrun.model.fp8 import fp8_linear, fp8_supported
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


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


@pytest.mark.parametrize("features", [[], ["smear=true", "attn_gate=true", "no_mlp_layers=[0]"]],
                         ids=["record21", "fast"])
def test_compiled_flex_model_matches_dense_model(features):
    r = load_recipe("record21", ["seq_len=4096", "val_seq_len=4096", "num_layers=4", "window_pattern='LSSL'",
                                 "no_attn_layers=[]", "value_embeds=2", "batch_tokens=4096", *features])
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
