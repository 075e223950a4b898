"""The record-21 GPT: value embeddings, U-net skips, QK-norm, half-truncated rotary, ReLU^2 MLP, soft-capped
logits, FP8 head. One row of tokens per call (batch 1); documents are separated by masking, not padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speedrun.model.attention import BlockLists, dense_attention, dense_mask, flex_block_mask
from speedrun.model.fp8 import fp8_linear
from speedrun.model.rotary import Rotary
from speedrun.recipe import Recipe


def norm(x: Tensor) -> Tensor:
    """RMSNorm over the last dim, no learned weight."""
    return F.rms_norm(x, (x.size(-1),))


def init_uniform_(w: Tensor, fan_in: int) -> Tensor:
    """Uniform init with std 0.5 / sqrt(fan_in) (bound sqrt(3) * std)."""
    bound = 3**0.5 * 0.5 * fan_in**-0.5
    with torch.no_grad():
        return w.uniform_(-bound, bound)


class CastedLinear(nn.Linear):
    """Linear without bias whose fp32 weight is cast to the activations' dtype; optionally FP8 in training."""

    def __init__(self, in_features: int, out_features: int, fp8_scales: tuple[float, float, float] | None = None,
                 zero_init: bool = False):
        self.zero_init = zero_init
        super().__init__(in_features, out_features, bias=False)
        self.fp8_scales = fp8_scales  # (x_s, w_s, grad_s) or None; the trainer clears it where FP8 is absent

    def reset_parameters(self) -> None:
        if self.zero_init:
            nn.init.zeros_(self.weight)
        else:
            init_uniform_(self.weight, self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        if self.fp8_scales is not None and self.training:
            return fp8_linear(x, self.weight, *self.fp8_scales)
        return F.linear(x, self.weight.type_as(x))


class CausalSelfAttention(nn.Module):
    def __init__(self, r: Recipe):
        super().__init__()
        self.num_heads, self.head_dim, self.scale = r.num_heads, r.head_dim, r.attn_scale
        hdim = r.num_heads * r.head_dim
        # One merged weight; Muon orthogonalises its three (hdim, dim) slices separately.
        self.qkv_w = nn.Parameter(init_uniform_(torch.empty(3, hdim, r.model_dim), r.model_dim))
        self.lambdas = nn.Parameter(torch.tensor([0.5, 0.5]))  # v = a*v + b*ve
        self.rotary = Rotary(r.head_dim, max(r.seq_len, r.val_seq_len), r.rotary_base)
        self.c_proj = CastedLinear(hdim, r.model_dim, zero_init=True)

    def forward(self, x: Tensor, ve: Tensor | None, mask) -> Tensor:
        B, T = x.size(0), x.size(1)
        qkv = F.linear(x, self.qkv_w.flatten(end_dim=1).type_as(x))
        q, k, v = qkv.view(B, T, 3 * self.num_heads, self.head_dim).chunk(3, dim=-2)
        q, k = norm(q), norm(k)
        q, k = self.rotary(q), self.rotary(k)
        v = self.lambdas[0] * v + self.lambdas[1] * ve.view_as(v) if ve is not None else self.lambdas[0] * v
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if isinstance(mask, Tensor):
            y = dense_attention(q, k, v, mask, self.scale)
        else:
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=mask, scale=self.scale)
        y = y.transpose(1, 2).contiguous().view(B, T, self.num_heads * self.head_dim)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, r: Recipe):
        super().__init__()
        self.c_fc = CastedLinear(r.model_dim, r.mlp_hidden)
        self.c_proj = CastedLinear(r.mlp_hidden, r.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, r: Recipe, layer: int):
        super().__init__()
        self.attn = None if layer in r.no_attn_layers else CausalSelfAttention(r)
        self.mlp = MLP(r)
        self.lambdas = nn.Parameter(torch.tensor([1.0, 0.0]))  # x = l0*x + l1*x0

    def forward(self, x: Tensor, ve: Tensor | None, x0: Tensor, mask) -> Tensor:
        x = self.lambdas[0] * x + self.lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(norm(x), ve, mask)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """`attention="flex"` uses FlexAttention block masks (GPU); `"dense"` a boolean mask with SDPA (anywhere)."""

    def __init__(self, r: Recipe, attention: str = "dense"):
        super().__init__()
        if attention not in ("flex", "dense"):
            raise ValueError(f"attention back-end {attention!r}: expected 'flex' or 'dense'")
        self.recipe, self.attention = r, attention
        self.embed = nn.Embedding(r.vocab_size, r.model_dim)
        self.value_embeds = nn.ModuleList(nn.Embedding(r.vocab_size, r.model_dim) for _ in range(r.value_embeds))
        self.blocks = nn.ModuleList(Block(r, i) for i in range(r.num_layers))
        fp8 = (r.fp8_x_scale, r.fp8_w_scale, r.fp8_grad_scale) if r.fp8_head else None
        self.lm_head = CastedLinear(r.model_dim, r.padded_vocab, fp8_scales=fp8, zero_init=True)
        self.skip_weights = nn.Parameter(torch.ones(r.num_layers // 2))
        self.ve_table = [r.value_embed_layer(i) for i in range(r.num_layers)]
        self.long_layer = [c == "L" for c in r.window_pattern]

    def masks(self, inputs: Tensor, long_blocks: int | Tensor) -> tuple:
        """(long-window mask, short-window mask) for this sequence, in the back-end's form."""
        lists = BlockLists.build(inputs, self.recipe.attn_block_size)
        if isinstance(long_blocks, Tensor):
            short_blocks = torch.clamp_min(long_blocks // 2, 1)
        else:
            short_blocks = max(1, long_blocks // 2)
        build = flex_block_mask if self.attention == "flex" else dense_mask
        return build(lists, long_blocks), build(lists, short_blocks)

    def forward(self, inputs: Tensor, targets: Tensor | None, long_blocks: int | Tensor) -> Tensor:
        """inputs (T,) token ids -> mean cross-entropy against targets, or the capped logits if targets is None."""
        if inputs.ndim != 1:
            raise ValueError(f"inputs must be one row of tokens (1-D), got shape {tuple(inputs.shape)}")
        long_mask, short_mask = self.masks(inputs, long_blocks)
        ve = [table(inputs)[None] for table in self.value_embeds]
        x = x0 = norm(self.embed(inputs)[None])
        skips = []
        n = len(self.skip_weights)
        for i, block in enumerate(self.blocks):
            if i >= n:
                x = x + self.skip_weights[i - n] * skips.pop()
            t = self.ve_table[i]
            x = block(x, ve[t] if t is not None else None, x0, long_mask if self.long_layer[i] else short_mask)
            if i < n:
                skips.append(x)
        logits = self.lm_head(norm(x)).float()
        r = self.recipe
        logits = r.logit_cap * torch.sigmoid(logits / r.logit_cap_div)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    # --- parameter groups, as the optimisers see them ---------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """muon: >=2-D block matrices; embed: token + value embeddings; head; scalar: everything with ndim < 2."""
        block_params = list(self.blocks.parameters())
        return {
            "muon": [p for p in block_params if p.ndim >= 2],
            "embed": [self.embed.weight, *(t.weight for t in self.value_embeds)],
            "head": [self.lm_head.weight],
            "scalar": [p for p in self.parameters() if p.ndim < 2],
        }
