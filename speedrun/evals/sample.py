"""Text generation from a trained model."""

from __future__ import annotations

import torch

from speedrun.data.tokenizer import EOT, decode, gpt2
from speedrun.model.gpt import GPT
from speedrun.optim.schedule import long_window_blocks


@torch.no_grad()
def generate(model: GPT, prompt: str, max_tokens: int, temperature: float = 0.8, top_k: int | None = 50,
             seed: int = 0) -> str:
    """Continue `prompt` by `max_tokens` tokens (temperature 0: greedy). Runs the model over the whole context
    for each token, padded to the attention block size (padding comes after the context, so causality hides it)."""
    r = model.recipe
    device = next(model.parameters()).device
    window = long_window_blocks(r.steps, r.steps, r.window_ramp_tokens, r.attn_block_size)
    if model.attention == "flex":
        window = torch.tensor(window, dtype=torch.int32, device=device)
    tokens = [EOT] + gpt2().encode_ordinary(prompt)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    block = r.attn_block_size
    for _ in range(max_tokens):
        ctx = tokens[-(r.seq_len - block):] if len(tokens) > r.seq_len - block else tokens
        padded = -(-len(ctx) // block) * block
        x = torch.zeros(padded, dtype=torch.int32, device=device)
        x[: len(ctx)] = torch.tensor(ctx, dtype=torch.int32)
        logits = model(x, None, window)[0, len(ctx) - 1, : r.vocab_size].float().cpu()
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits[logits < kth] = -float("inf")
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        if nxt == EOT:
            break
        tokens.append(nxt)
    model.train(was_training)
    return prompt + decode(tokens[1 + len(gpt2().encode_ordinary(prompt)):])
