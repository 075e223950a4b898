"""GPU check of the validation loss in slices (GPT.sliced_loss) under torch.compile: the compiled model without
gradients holds one slice's logits at a time, and its loss is the one-slice loss."""

import pytest
import torch
from test_gpu import random_docs

import speedrun.model.gpt as gpt
from speedrun.build import build_model
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

VAL_ROW = 65536  # a quarter of the recipes' val row: its bf16 logits alone are 6.1 GiB


def test_compiled_validation_loss_holds_one_slice_of_logits(monkeypatch):
    r = load_recipe("fast_1gpu", ["num_layers=4", "window_pattern='LSSL'", "no_attn_layers=[]", "value_embeds=2",
                                  "seq_len=4096", "batch_tokens=4096", f"val_seq_len={VAL_ROW}"])
    model = build_model(r, make_plan(r))
    with torch.no_grad():
        torch.nn.init.normal_(model.lm_head.weight, std=0.02)  # the head starts at zero: make the loss depend on it
    model.eval()
    tokens = random_docs(VAL_ROW + 1, 600, seed=2)
    inputs, targets = tokens[:-1].int(), tokens[1:].long()
    window = torch.tensor(14, device="cuda")
    runner = torch.compile(model, dynamic=False)

    def loss_and_extra_memory():
        with torch.no_grad():
            runner(inputs, targets, window)  # compiles (again, when the slice size changed)
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            loss = runner(inputs, targets, window).item()
        return loss, torch.cuda.max_memory_allocated() - base

    slice_tokens = gpt.LOSS_SLICE_TOKENS
    sliced, sliced_bytes = loss_and_extra_memory()
    monkeypatch.setattr(gpt, "LOSS_SLICE_TOKENS", VAL_ROW)  # one slice: the whole row's logits at once
    whole, whole_bytes = loss_and_extra_memory()
    logits_bytes = VAL_ROW * r.padded_vocab * 2
    print(f"\nval loss in slices of {slice_tokens:,} vs one slice: {sliced:.5f} vs {whole:.5f}; "
          f"memory above the model: {sliced_bytes / 2**30:.2f} vs {whole_bytes / 2**30:.2f} GiB "
          f"(bf16 logits of the row: {logits_bytes / 2**30:.2f} GiB)")
    assert whole_bytes > 0.9 * logits_bytes  # the one-slice build does hold the row's logits
    assert sliced_bytes < 0.5 * whole_bytes  # 4 slices: about a quarter of the logits' memory, whatever their dtype
    assert abs(sliced - whole) < 1e-3 * abs(whole)
