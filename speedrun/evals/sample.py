"""Text generation from a trained model, with a KV cache.

The prompt is one document: <|endoftext|> then its BPE tokens, fed once (prefill); then each new token is fed alone
against the cache (`GPT.forward_cached`), under the training mask rule with the window of the final training step.
The cache keeps only the keys a later query can still see (the window), so long generations cost the same per token.
"""

import codecs
from collections.abc import Callable

import torch

from speedrun.checkpoint import load_model
from speedrun.data.tokenizer import EOT, decode, gpt2
from speedrun.errors import SpeedrunError
from speedrun.model.decoding import KVCache
from speedrun.model.gpt import GPT
from speedrun.optim.schedule import long_window_blocks
from speedrun.recipe import MAX_SEED


def final_window(model: GPT) -> int:
    """The long attention window (in blocks) of the last training step: the one the trained model ends with."""
    r = model.recipe
    return long_window_blocks(r.steps, r.steps, r.window_ramp_tokens, r.attn_block_size)


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, gen: torch.Generator | None) -> int:
    """Next token from (vocab,) float logits: argmax at temperature <= 0, else a top-k softmax sample."""
    if temperature <= 0:
        return int(logits.argmax())
    # from the maximum and in float64 (a temperature below float32's range would be 0 there), so that a tiny
    # temperature takes the others to -inf, not the maximum to inf or 0 / 0 (then nan): greedy in the limit
    logits = (logits.double() - logits.max()) / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))


@torch.no_grad()
def generate(model: GPT, prompt: str, max_tokens: int, temperature: float = 0.8, top_k: int | None = 50,
             seed: int = 0, on_text: Callable[[str], None] | None = None) -> str:
    """`prompt` continued until <|endoftext|> (the end of the document) or `max_tokens` (temperature 0: greedy).
    on_text: called with the prompt, then with each new piece of text as it is generated (whole characters: a token
    may end inside one), so a long sample shows as it grows; the pieces join to the text returned."""
    device = next(model.parameters()).device
    window = final_window(model)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        cache = KVCache()
        x = torch.tensor([EOT] + gpt2().encode_ordinary(prompt), dtype=torch.int32, device=device)
        out: list[int] = []
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # as tiktoken's decode, piece by piece
        if on_text:
            on_text(prompt)
        for _ in range(max_tokens):
            logits = model.forward_cached(x, cache, window, last_only=True)[0, : model.recipe.vocab_size]
            if not torch.isfinite(logits).all():  # else multinomial's own error, a traceback
                raise SpeedrunError(f"the model's next-token logits are not finite (NaN or inf) after "
                                    f"{len(out)} sampled tokens: its weights have diverged; no sample")
            nxt = pick(logits.float().cpu(), temperature, top_k, gen)
            if nxt == EOT:
                break
            out.append(nxt)
            if on_text and (piece := utf8.decode(gpt2().decode_single_token_bytes(nxt))):
                on_text(piece)
            x = torch.tensor([nxt], dtype=torch.int32, device=device)
        if on_text and (piece := utf8.decode(b"", final=True)):
            on_text(piece)
        return prompt + decode(out)
    finally:
        model.train(was_training)


def load_on(checkpoint, device: str | None = None):
    """`load_model` on `device`; cuda:N moves the model to GPU N (the plan builds it on cuda:LOCAL_RANK)."""
    model, plan, ckpt = load_model(checkpoint, device)
    if device and device.startswith("cuda:"):
        plan.device = torch.device(device)
        model.to(plan.device)
    return model, plan, ckpt


def check_sample_options(max_tokens: int, temperature: float, top_k: int | None, num_samples: int,
                         seed: int) -> None:
    """SpeedrunError (one line) for options no sample can take; `speedrun sample` checks them before the checkpoint
    loads, which may take a while."""
    if max_tokens < 0 or num_samples < 1 or (top_k or 0) < 0 or not temperature >= 0:
        raise SpeedrunError(f"--tokens >= 0, --num-samples >= 1, --top-k >= 0 and --temperature >= 0 (got "
                            f"{max_tokens}, {num_samples}, {top_k}, {temperature})")
    if not 0 <= seed <= MAX_SEED - (num_samples - 1):
        why = f" with --num-samples {num_samples} (sample i uses seed + i)" if num_samples > 1 else ""
        raise SpeedrunError(f"--seed {seed} must lie in 0..{MAX_SEED - (num_samples - 1)}{why}: torch's seeds")


def sample_from_checkpoint(checkpoint, prompt: str = "", max_tokens: int = 100, temperature: float = 0.8,
                           top_k: int | None = 50, num_samples: int = 1, seed: int = 0,
                           device: str | None = None, on_text: Callable[[str], None] | None = None,
                           on_end: Callable[[], None] | None = None) -> list[str]:
    """`num_samples` continuations of `prompt` from a checkpoint (sample i uses seed + i, so each one can be
    reproduced alone). device: cpu, cuda, cuda:N, or None (a GPU when one is visible). top_k 0 or None: no cut.
    on_text: each sample's text as it grows (see `generate`); on_end: called after each sample."""
    check_sample_options(max_tokens, temperature, top_k, num_samples, seed)
    model, _, _ = load_on(checkpoint, device)
    texts = []
    for i in range(num_samples):
        texts.append(generate(model, prompt, max_tokens, temperature, top_k, seed + i, on_text))
        if on_end:
            on_end()
    return texts
