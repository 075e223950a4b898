"""The record-21 GPT: value embeddings, U-net skips, QK-norm, half-truncated rotary, ReLU^2 MLP, soft-capped
logits, FP8 head. One row of tokens per call (batch 1); documents are separated by masking, not padding.

`GPT.forward_cached` is the incremental path for generation and completion scoring: it feeds new tokens against
a `KVCache` of earlier keys and values and applies the same mask rule (causal, same document, block-granular
sliding window) to absolute positions, so it gives the logits of the full forward pass one chunk at a time.

Paired-head layers (`Recipe.paired_head_layers`) take masks of their own, for the sequence of 2T rows that
`interleave_heads` makes (see speedrun/model/attention.py); rotary is applied before, at each token's position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speedrun.data.tokenizer import EOT
from speedrun.kernels.linear_relu2 import fused_linear_relu2_mlp, linear_relu2_usable
from speedrun.model.attention import (
    BlockLists,
    deinterleave_heads,
    dense_attention,
    dense_mask,
    document_ids,
    document_starts,
    flex_block_mask,
    interleave_heads,
    short_window_blocks,
)
from speedrun.model.fp8 import dynamic_fp8_linear, fp8_linear, fp8_softcap_cross_entropy
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets
from speedrun.model.rotary import Rotary, rotary_frequencies
from speedrun.optim.schedule import long_window_blocks, max_doc_tokens_at, mtp_decay
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
    """Linear without bias whose fp32 weight is cast to the activations' dtype; optionally FP8 in training, with
    fixed scales (`fp8_scales`, the head) or scales from each operand's maximum (`fp8_dynamic`, the MLP)."""

    def __init__(self, in_features: int, out_features: int, fp8_scales: tuple[float, float, float] | None = None,
                 zero_init: bool = False):
        self.zero_init = zero_init
        super().__init__(in_features, out_features, bias=False)
        self.fp8_scales = fp8_scales  # (x_s, w_s, grad_s) or None; the trainer clears it where FP8 is absent
        self.fp8_dynamic = False  # set by the model where the recipe asks for it; cleared like fp8_scales

    def reset_parameters(self) -> None:
        if self.zero_init:
            nn.init.zeros_(self.weight)
        else:
            init_uniform_(self.weight, self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        if self.fp8_scales is not None and self.training:
            return fp8_linear(x, self.weight, *self.fp8_scales)
        if self.fp8_dynamic and self.training:
            return dynamic_fp8_linear(x, self.weight)
        return F.linear(x, self.weight.type_as(x))


GATE_SUFFIX = "gate_w"  # parameters named *gate_w are small gate matrices: Adam with the scalars, not Muon


def gate_weight(outputs: int, inputs: int) -> nn.Parameter:
    """A small gate matrix, zero-initialised (sigmoid gates start at 0.5)."""
    return nn.Parameter(torch.zeros(outputs, inputs))


class CausalSelfAttention(nn.Module):
    def __init__(self, r: Recipe, has_value_embed: bool = True, paired: bool = False):
        super().__init__()
        self.num_heads, self.head_dim, self.scale = r.num_heads, r.head_dim, r.attn_scale
        # Paired heads: heads 2j, 2j+1 attend as one head over both heads' keys of every position (no new weights);
        # the layer then takes a mask of the interleaved 2T sequence.
        self.paired = paired
        hdim = r.num_heads * r.head_dim
        # One merged weight; Muon orthogonalises its three (hdim, dim) slices separately.
        self.qkv_w = nn.Parameter(init_uniform_(torch.empty(3, hdim, r.model_dim), r.model_dim))
        self.lambdas = nn.Parameter(torch.tensor([0.5, 0.5]))  # v = a*v + b*ve
        self.rotary = Rotary(r.head_dim, max(r.seq_len, r.val_seq_len), r.rotary_base)
        self.c_proj = CastedLinear(hdim, r.model_dim, zero_init=True)
        # Sparse attention gate: each head's output scaled by sigmoid(w_h . x[:gate_dims]), so a head can switch
        # itself off for a token instead of parking attention on a sink.
        self.gate_dims = r.gate_dims
        self.gate_w = gate_weight(r.num_heads, r.gate_dims) if r.attn_gate else None
        # Value-embedding gate: each head's share of the value embedding scaled by 2 * sigmoid(w_h . x[:gate_dims])
        # (1 at init), so a head can take more or less of the token's value embedding token by token.
        self.ve_gate_w = gate_weight(r.num_heads, r.gate_dims) if r.ve_gate and has_value_embed else None

    def forward(self, x: Tensor, ve: Tensor | None, mask) -> Tensor:
        B, T = x.size(0), x.size(1)
        qkv = F.linear(x, self.qkv_w.flatten(end_dim=1).type_as(x))
        q, k, v = qkv.view(B, T, 3 * self.num_heads, self.head_dim).chunk(3, dim=-2)
        q, k = norm(q), norm(k)
        cached = isinstance(mask, CachedWindow)
        q, k = (mask.rotate(self.rotary, q), mask.rotate(self.rotary, k)) if cached else (self.rotary(q), self.rotary(k))
        if ve is not None:
            ve = ve.view_as(v)
            if self.ve_gate_w is not None:
                ve = ve * (2 * torch.sigmoid(F.linear(x[..., : self.gate_dims], self.ve_gate_w.type_as(x))))[..., None]
            v = self.lambdas[0] * v + self.lambdas[1] * ve
        else:
            v = self.lambdas[0] * v
        if self.paired:
            q, k, v = interleave_heads(q), interleave_heads(k), interleave_heads(v)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if cached:
            y = mask.attend(self, q, k, v, self.scale)
        elif isinstance(mask, Tensor):
            y = dense_attention(q, k, v, mask, self.scale)
        else:
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=mask, scale=self.scale)
        y = y.transpose(1, 2)
        if self.paired:
            y = deinterleave_heads(y)
        if self.gate_w is not None:
            y = y * torch.sigmoid(F.linear(x[..., : self.gate_dims], self.gate_w.type_as(x)))[..., None]
        y = y.contiguous().view(B, T, self.num_heads * self.head_dim)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, r: Recipe):
        super().__init__()
        self.c_fc = CastedLinear(r.model_dim, r.mlp_hidden)
        self.c_proj = CastedLinear(r.mlp_hidden, r.model_dim, zero_init=True)
        self.c_fc.fp8_dynamic = self.c_proj.fp8_dynamic = r.fp8_mlp
        self.fused = r.fused_mlp  # set from the recipe; the trainer clears it where the kernel cannot run (CPU)

    def forward(self, x: Tensor) -> Tensor:
        # Training only, like FP8: validation and sampling keep the plain path (no backward to save work for).
        if self.fused and self.training and linear_relu2_usable(x):
            return fused_linear_relu2_mlp(x, self.c_fc.weight, self.c_proj.weight)
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, r: Recipe, layer: int):
        super().__init__()
        self.attn = None if layer in r.no_attn_layers else CausalSelfAttention(
            r, r.value_embed_layer(layer) is not None, paired=layer in r.paired_head_layers)
        self.mlp = None if layer in r.no_mlp_layers else MLP(r)
        self.lambdas = nn.Parameter(torch.tensor([1.0, 0.0]))  # x = l0*x + l1*x0

    def forward(self, x: Tensor, ve: Tensor | None, x0: Tensor, mask) -> Tensor:
        x = self.lambdas[0] * x + self.lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(norm(x), ve, mask)
        return x + self.mlp(norm(x)) if self.mlp is not None else x


def bigram_ids(inputs: Tensor, buckets: int, previous_token: Tensor | None = None,
               starts: Tensor | None = None) -> Tensor:
    """(T,) token ids -> the bigram table row of each (previous token, token) pair: a multiplicative hash into
    1 .. buckets - 1, and row 0 where there is no previous token in the document (the row's first position,
    unless `previous_token` is given, and every document start), so no document sees another. `starts` (T,) bool:
    the document starts (default: the <|endoftext|> tokens; in training maybe also max_doc_tokens pieces)."""
    prev = inputs[:1].new_full((1,), -1) if previous_token is None else previous_token.reshape(1).to(inputs.dtype)
    prev = torch.cat([prev, inputs[:-1]]).long()
    cur = inputs.long()
    ids = ((prev * 1_000_003) ^ cur) % (buckets - 1) + 1
    return torch.where((prev < 0) | (cur == EOT if starts is None else starts), 0, ids)


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
        # Smear: x[t] += lambda * sigmoid(w . x[t][:gate_dims]) * x[t-1] on the token embeddings (lambda starts at 0)
        self.smear_gate_w = gate_weight(1, r.gate_dims) if r.smear else None
        self.smear_lambda = nn.Parameter(torch.zeros(1)) if r.smear else None
        # Skip gate: skip j scaled by 2 * sigmoid(w_j . x[:gate_dims]) per token (1 at init)
        self.skip_gate_w = gate_weight(r.num_layers // 2, r.gate_dims) if r.skip_gate else None
        # Bigram hash embedding: a table indexed by a hash of (previous token, token), added to the token embedding;
        # zero at init, so the model starts as without it
        self.bigram_embed = nn.Embedding(r.bigram_buckets, r.model_dim) if r.bigram_buckets else None
        if self.bigram_embed is not None:
            nn.init.zeros_(self.bigram_embed.weight)
        self.ve_table = [r.value_embed_layer(i) for i in range(r.num_layers)]
        self.long_layer = [c == "L" for c in r.window_pattern]
        self._window_tensors: dict = {}  # (blocks, device) -> int32 tensor, see `window`
        # Multi-token prediction: the extra targets' weights of the current step, a float32 buffer that
        # `set_mtp_step` rewrites in place, so a compiled model reads each step's values without recompiling. Not
        # persistent: the step sets it (checkpoints and warm-up restores need not carry it).
        mtp = torch.tensor(r.mtp_weights, dtype=torch.float32) if r.mtp_weights else None
        self.register_buffer("mtp_start", mtp, persistent=False)
        self.register_buffer("mtp_w", None if mtp is None else mtp.clone(), persistent=False)
        # Sequence-length schedule: the training document cap of the current stage, an int64 buffer rewritten in
        # place by `set_doc_cap_step` (as the MTP weights: no recompile at a stage change). Not persistent.
        cap = torch.tensor(r.max_doc_tokens_stages[0]) if r.max_doc_tokens_stages else None
        self.register_buffer("doc_cap", cap, persistent=False)
        self._doc_cap_value = int(cap) if cap is not None else 0  # what the buffer holds, read without a sync
        # which of GPT.masks' masks each layer takes: 0 long, 1 short, 2 / 3 the same for paired-head layers
        self.mask_index = [2 * (i in r.paired_head_layers) + (not long) for i, long in enumerate(self.long_layer)]
        self.paired_windows = [any(self.mask_index[i] == m for i in r.paired_head_layers) for m in (2, 3)]

    def window(self, step: int) -> int | Tensor:
        """The long attention window at `step` of the recipe's schedule (in blocks), in the form this back-end
        takes: an int32 tensor for FlexAttention, so that a growing window never triggers a recompile.

        Each distinct window's tensor is made once and reused: building it anew every step is a host-to-device
        copy, which waits for the GPU to finish all queued work and so leaves it idle until the next launch."""
        r = self.recipe
        w = long_window_blocks(step, r.steps, r.window_ramp_tokens, r.attn_block_size)
        if self.attention == "flex":
            device = self.embed.weight.device
            cached = self._window_tensors.get((w, device))
            if cached is None:
                cached = self._window_tensors[(w, device)] = torch.tensor(w, dtype=torch.int32, device=device)
            return cached
        return w

    def masks(self, inputs: Tensor, long_blocks: int | Tensor, starts: Tensor | None = None) -> tuple:
        """(long-window mask, short-window mask) for this sequence, in the back-end's form; with paired-head layers
        two more, the same windows (in blocks) over the interleaved 2T rows, None where no paired layer has it.
        `starts` (T,) bool: the document starts (default: the <|endoftext|> tokens)."""
        starts = inputs == EOT if starts is None else starts
        lists = BlockLists.from_docs(starts.cumsum(0), self.recipe.attn_block_size)
        build = flex_block_mask if self.attention == "flex" else dense_mask
        short_blocks = short_window_blocks(long_blocks)
        masks = (build(lists, long_blocks), build(lists, short_blocks))
        if not self.recipe.paired_head_layers:
            return masks
        pairs = lists.paired()
        return masks + tuple(build(pairs, w) if used else None
                             for w, used in zip((long_blocks, short_blocks), self.paired_windows))

    def document_starts(self, inputs: Tensor) -> Tensor:
        """(T,) bool: where documents start for this forward pass. In training with max_doc_tokens, a long
        document's pieces count as documents (attention, smear and bigram alike); in evaluation and generation,
        only real documents (<|endoftext|>) do. With a sequence-length schedule the cap is the current stage's
        (`set_doc_cap_step`), read from a device buffer."""
        if not self.training:
            return document_starts(inputs, 0)
        return document_starts(inputs, self.doc_cap if self.doc_cap is not None else self.recipe.max_doc_tokens)

    def forward(self, inputs: Tensor, targets: Tensor | None, long_blocks: int | Tensor,
                starts: Tensor | None = None) -> Tensor:
        """inputs (T,) token ids -> mean cross-entropy against targets (in training with multi-token prediction,
        plus its weighted extra terms), or the capped logits if targets is None. `starts` (T,) bool: where
        documents start, instead of `document_starts(inputs)`."""
        if inputs.ndim != 1:
            raise ValueError(f"inputs must be one row of tokens (1-D), got shape {tuple(inputs.shape)}")
        starts = self.document_starts(inputs) if starts is None else starts
        long_mask, short_mask, *paired_masks = self.masks(inputs, long_blocks, starts)
        x = self.trunk(inputs, long_mask, short_mask, starts=starts, paired_masks=paired_masks)
        # the extra targets stay within real documents (<|endoftext|>), pieces of max_doc_tokens or not
        extra = mtp_targets(targets, self.mtp_w.numel()) if targets is not None and self.mtp_active() else None
        if targets is not None and self.fused_head_loss_active():
            r = self.recipe
            return fp8_softcap_cross_entropy(norm(x), self.lm_head.weight, targets, *self.lm_head.fp8_scales,
                                             r.logit_cap, r.logit_cap_div, extra, None if extra is None else self.mtp_w)
        logits = self.head(x)
        if targets is None:
            return logits
        logits, targets = logits.view(-1, logits.size(-1)), targets.view(-1)
        if extra is not None:
            return mtp_cross_entropy(logits, targets, extra, self.mtp_w)
        return F.cross_entropy(logits, targets)

    def mtp_active(self) -> bool:
        """The recipe has multi-token-prediction weights and the model is training with gradients (validation
        and sampling score the next token alone)."""
        return self.mtp_w is not None and self.training and torch.is_grad_enabled()

    def set_step(self, step: int) -> None:
        """Set every in-place schedule of the training forward pass to `step`: the MTP weights and the document cap."""
        self.set_mtp_step(step)
        self.set_doc_cap_step(step)

    def set_doc_cap_step(self, step: int) -> None:
        """Set the document cap of `step` of the sequence-length schedule (max_doc_tokens_stages), in place; a fill
        kernel only when the stage changes (a host-to-device copy would wait for the GPU)."""
        if self.doc_cap is not None:
            r = self.recipe
            cap = max_doc_tokens_at(step, r.steps, r.max_doc_tokens_stages)
            if cap != self._doc_cap_value:
                self.doc_cap.fill_(cap)
                self._doc_cap_value = cap

    def set_mtp_step(self, step: int) -> None:
        """Set the multi-token-prediction weights of `step` (speedrun.optim.schedule.mtp_weights_at), in place:
        one small kernel with the decay as its argument, no host-to-device copy (which would wait for the GPU)."""
        if self.mtp_w is not None:
            r = self.recipe
            torch.mul(self.mtp_start, mtp_decay(step, r.steps, r.mtp_end_frac), out=self.mtp_w)

    def fused_head_loss_active(self) -> bool:
        """The recipe asks for the fused head + loss op and the FP8 head is on (GPU training with gradients)."""
        return (self.recipe.fused_head_loss and self.lm_head.fp8_scales is not None and self.training
                and torch.is_grad_enabled())

    def smear_embeddings(self, x: Tensor, inputs: Tensor, previous: Tensor | None = None,
                         starts: Tensor | None = None) -> Tensor:
        """x (T, dim) token embeddings -> each plus a gated share of the previous position's embedding, except at
        document starts (<|endoftext|>, or `starts` (T,) bool where given), so no document sees another.
        `previous`: the embedding of the position before inputs[0] (incremental decoding), or None at the start
        of a sequence."""
        starts = inputs == EOT if starts is None else starts
        prev = x[:-1] if previous is None else torch.cat([previous.type_as(x)[None], x[:-1]])
        cur, at_start = (x[1:], starts[1:]) if previous is None else (x, starts)
        gate = torch.sigmoid(F.linear(cur[:, : self.recipe.gate_dims], self.smear_gate_w.type_as(x)))
        gate = self.smear_lambda.type_as(x) * gate * (~at_start)[:, None].to(x.dtype)  # 0 at document starts
        mixed = cur + gate * prev
        return mixed if previous is not None else torch.cat([x[:1], mixed])

    def trunk(self, inputs: Tensor, long_mask, short_mask, previous_token: Tensor | None = None,
              starts: Tensor | None = None, paired_masks=()) -> Tensor:
        """Embeddings and blocks: (T,) token ids -> (1, T, model_dim) final hidden states. `previous_token` (1,):
        the token before inputs[0] (incremental decoding), or None at the start of a sequence. `starts` (T,) bool:
        the document starts the masks were built from (default: the <|endoftext|> tokens). `paired_masks`:
        (long, short) masks of the paired-head layers (GPT.masks' last two), where the recipe has such layers."""
        masks = (long_mask, short_mask, *paired_masks)
        ve = [table(inputs)[None] for table in self.value_embeds]
        x = self.embed(inputs)
        if self.smear_gate_w is not None:
            previous = self.embed(previous_token)[0] if previous_token is not None else None
            x = self.smear_embeddings(x, inputs, previous, starts)
        if self.bigram_embed is not None:  # after smear, so smear mixes token embeddings only
            x = x + self.bigram_embed(bigram_ids(inputs, self.bigram_embed.num_embeddings, previous_token, starts))
        x = x0 = norm(x[None])
        skips = []
        n = len(self.skip_weights)
        gd = self.recipe.gate_dims
        for i, block in enumerate(self.blocks):
            if i >= n:
                j = i - n
                w = self.skip_weights[j]
                if self.skip_gate_w is not None:
                    w = w * 2 * torch.sigmoid(F.linear(x[..., :gd], self.skip_gate_w[j : j + 1].type_as(x)))
                x = x + w * skips.pop()
            t = self.ve_table[i]
            x = block(x, ve[t] if t is not None else None, x0, masks[self.mask_index[i]])
            if i < n:
                skips.append(x)
        return x

    def head(self, x: Tensor) -> Tensor:
        """Hidden states -> soft-capped float32 logits over the padded vocabulary."""
        logits = self.lm_head(norm(x)).float()
        r = self.recipe
        return r.logit_cap * torch.sigmoid(logits / r.logit_cap_div)

    def forward_cached(self, inputs: Tensor, cache: "KVCache", long_blocks: int, last_only: bool = False) -> Tensor:
        """Feed the next tokens of a sequence whose earlier tokens are in `cache` (which this call extends).

        inputs (T,) token ids at positions cache.length ... cache.length + T - 1 -> capped logits (T, padded_vocab),
        or (1, padded_vocab) for the last position only. Same rule as the full forward pass with window
        `long_blocks` (short layers: half of it), so a sequence fed in chunks gets the logits of one full pass.
        """
        if inputs.ndim != 1 or inputs.numel() == 0:
            raise ValueError(f"inputs must be a non-empty row of tokens (1-D), got shape {tuple(inputs.shape)}")
        T = inputs.numel()
        positions = torch.arange(cache.length, cache.length + T, device=inputs.device)
        docs = cache.doc + document_ids(inputs)
        long_w = int(long_blocks)
        block = self.recipe.attn_block_size
        pairs = (False, True) if self.recipe.paired_head_layers else (False,)
        masks = [CachedWindow(cache, positions, docs, w, block, self.recipe.rotary_base, paired)
                 for paired in pairs for w in (long_w, short_window_blocks(long_w))]
        x = self.trunk(inputs, masks[0], masks[1], cache.last_token if cache.length else None,
                       paired_masks=masks[2:])
        cache.length += T
        cache.doc = int(docs[-1])
        cache.last_token = inputs[-1:]
        return self.head(x[:, -1:] if last_only else x)[0]

    def embedding_tables(self) -> list[nn.Embedding]:
        """Token, value and bigram embedding tables (Adam at lr_embed; kept in bf16 on the GPU)."""
        return [self.embed, *self.value_embeds, *([self.bigram_embed] if self.bigram_embed is not None else [])]

    # --- parameter groups, as the optimisers see them ---------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """muon: >=2-D block matrices; embed: token + value embeddings; head; scalar: everything with ndim < 2 and
        the small gate matrices."""
        blocks = list(self.blocks.named_parameters())
        return {
            "muon": [p for n, p in blocks if p.ndim >= 2 and not n.endswith(GATE_SUFFIX)],
            "embed": [t.weight for t in self.embedding_tables()],
            "head": [self.lm_head.weight],
            "scalar": [p for n, p in self.named_parameters() if p.ndim < 2 or n.endswith(GATE_SUFFIX)],
        }


# --- incremental decoding ---------------------------------------------------------------------------------------
class KVCache:
    """Keys and values of the positions an attention layer may still see, per layer, for `GPT.forward_cached`.

    Entries are replaced, never written in place, so `copy()` is cheap and a copy can branch off (completion
    scoring feeds one shared context, then each ending from its own copy).
    """

    def __init__(self):
        # id(attn) -> (k, v, rows, docs): rows are positions, or for paired-head layers interleaved rows 2t + p
        self.layers: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        self.length = 0  # positions fed so far
        self.doc = 0  # document id of the last position fed
        self.last_token: Tensor | None = None  # (1,) id of the last position fed (smear and bigram look back)

    def copy(self) -> "KVCache":
        out = KVCache()
        out.layers, out.length, out.doc, out.last_token = dict(self.layers), self.length, self.doc, self.last_token
        return out


class CachedWindow:
    """Takes the place of the mask in `CausalSelfAttention.forward` when decoding against a KVCache: rotary at
    absolute positions, and attention to cached + new keys under the rule key k visible from query q iff
    k <= q, same document, q // block - k // block < window. For paired-head layers (`paired`) q and k are rows
    of the interleaved sequence (row 2t + p: head p of the pair at position t), as in the full forward pass."""

    def __init__(self, cache: KVCache, positions: Tensor, docs: Tensor, window_blocks: int, block_size: int,
                 rotary_base: float, paired: bool = False):
        self.cache, self.positions, self.docs = cache, positions, docs
        self.window, self.block, self.base = window_blocks, block_size, rotary_base
        if paired:  # the rows attention runs over, and their documents (each position's, twice)
            self.rows = (2 * positions[:, None] + torch.arange(2, device=positions.device)).flatten()
            self.row_docs = docs.repeat_interleave(2)
        else:
            self.rows, self.row_docs = positions, docs

    def rotate(self, rotary: Rotary, x: Tensor) -> Tensor:
        """Rotary.forward at positions self.positions (x: (B, T, H, D)); the same arithmetic, so the same values."""
        table = rotary.cos.size(0)
        if int(self.positions[-1]) < table:
            cos, sin = rotary.cos[self.positions], rotary.sin[self.positions]
        else:  # past the table (long generations): the same angles, computed here
            freqs = rotary_frequencies(x.size(-1), self.base).to(x.device)
            theta = self.positions.to(torch.float32)[:, None] * freqs[None]
            cos, sin = theta.cos(), theta.sin()
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        x1, x2 = x.float().chunk(2, dim=-1)
        y1 = x1 * cos + x2 * sin
        y2 = x1 * (-sin) + x2 * cos
        return torch.cat((y1, y2), dim=-1).type_as(x)

    def attend(self, layer: nn.Module, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        """q, k, v (B, H, T, D) of the new rows; extends the layer's cache and drops keys no later query sees."""
        key = id(layer)
        pos, docs = self.rows, self.row_docs
        if key in self.cache.layers:
            k0, v0, p0, d0 = self.cache.layers[key]
            k, v, pos_all, docs_all = torch.cat([k0, k], 2), torch.cat([v0, v], 2), torch.cat([p0, pos]), torch.cat([d0, docs])
        else:
            pos_all, docs_all = pos, docs
        b = self.block
        mask = ((pos_all[None, :] <= pos[:, None]) & (docs_all[None, :] == docs[:, None])
                & (pos[:, None] // b - pos_all[None, :] // b < self.window))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        # Later queries sit at rows > pos[-1] in documents >= docs[-1]: older blocks and documents are out of reach.
        nxt = int(pos[-1]) + 1
        keep = (nxt // b - pos_all // b < self.window) & (docs_all == docs[-1])
        first = int((~keep).sum())  # keep is False then True (positions and documents only grow)
        self.cache.layers[key] = (k[:, :, first:], v[:, :, first:], pos_all[first:], docs_all[first:])
        return y
