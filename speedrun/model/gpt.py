"""The record-21 GPT: value embeddings, U-net skips, QK-norm, half-truncated rotary, ReLU^2 MLP, soft-capped
logits, FP8 head. One row of tokens per call (batch 1); documents are separated by masking, not padding.
`GPT.forward_cached` is the incremental path (generation, completion scoring) against a `decoding.KVCache`.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import (
    BlockLists,
    DenseWindow,
    FlexWindow,
    dense_mask,
    document_ids,
    flex_block_mask,
    short_window_blocks,
)
from speedrun.model.decoding import CachedWindow, KVCache
from speedrun.model.fp8 import delayed_fp8_mlp, dynamic_fp8_linear, fp8_linear, fp8_softcap_cross_entropy
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets
from speedrun.model.rotary import Rotary, rotary_frequencies
from speedrun.model.sampled_head import candidate_rows, negatives_offset, rows_at
from speedrun.optim.schedule import long_window_blocks, mtp_decay
from speedrun.recipe import Recipe

# positions per slice of the validation loss (GPT.sliced_loss): 16,384 x 50,304 logits are 1.6 GiB in bf16
LOSS_SLICE_TOKENS = 16384


def norm(x: Tensor) -> Tensor:
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


TIED_INIT_STD = 0.005  # a tied embedding/head table's init (upstream record 51)
GATE_SUFFIX = "gate_w"  # parameters named *gate_w are small gate matrices: Adam with the scalars, not Muon


def gate_weight(outputs: int, inputs: int) -> nn.Parameter:
    """A small gate matrix, zero-initialised (sigmoid gates start at 0.5)."""
    return nn.Parameter(torch.zeros(outputs, inputs))


class CausalSelfAttention(nn.Module):
    def __init__(self, r: Recipe, key_offset: bool, rotary: Rotary):
        super().__init__()
        self.num_heads, self.head_dim, self.scale = r.num_heads, r.head_dim, r.attn_scale
        hdim = r.num_heads * r.head_dim
        # One merged weight; Muon orthogonalises its three (hdim, dim) slices separately.
        self.qkv_w = nn.Parameter(init_uniform_(torch.empty(3, hdim, r.model_dim), r.model_dim))
        self.lambdas = nn.Parameter(torch.tensor([0.5, 0.5]))  # v = a*v + b*ve
        self.rotary = rotary  # one table for all layers: each its own would be 2 x 67 MB at record21's lengths
        self.c_proj = CastedLinear(hdim, r.model_dim, zero_init=True)
        # Sparse attention gate: each head's output scaled by sigmoid(w_h . x[:gate_dims]), so a head can switch
        # itself off for a token instead of parking attention on a sink.
        self.gate_dims = r.gate_dims
        self.gate_w = gate_weight(r.num_heads, r.gate_dims) if r.attn_gate else None
        # Key offset: the key's position-free dims (zero rotary frequency) describe the previous token, so one layer
        # can match "the token after an earlier copy of mine" (induction) without a second layer.
        self.key_offset = key_offset
        stationary = rotary_frequencies(r.head_dim, r.rotary_base).repeat(2) == 0 if key_offset else None
        self.register_buffer("stationary", stationary, persistent=False)

    def forward(self, x: Tensor, ve: Tensor | None, window, not_start: Tensor | None = None) -> Tensor:
        """window: how this layer attends (`attention.FlexWindow` / `DenseWindow` over a whole row, or
        `decoding.CachedWindow` against a KV cache). not_start (T,): False where a document starts (the key offset,
        which needs it, never reaches across one)."""
        B, T = x.size(0), x.size(1)
        qkv = F.linear(x, self.qkv_w.flatten(end_dim=1).type_as(x))
        q, k, v = qkv.view(B, T, 3 * self.num_heads, self.head_dim).chunk(3, dim=-2)
        q, k = norm(q), norm(k)
        q, k = window.rotate(self.rotary, q), window.rotate(self.rotary, k)
        if self.key_offset:
            shifted = torch.cat([window.previous_key(self, k), k[:, :-1]], dim=1)
            shifted = shifted * not_start[None, :, None, None].to(k.dtype)
            k = torch.where(self.stationary, shifted, k)
        v = self.lambdas[0] * v if ve is None else self.lambdas[0] * v + self.lambdas[1] * ve.view_as(v)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = window.attend(self, q, k, v, self.scale).transpose(1, 2)
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
        # Delayed FP8 scaling: last step's maxima of ReLU² and of its gradient (speedrun/model/fp8.py). Persistent:
        # checkpoints carry it, so a resumed run casts as the straight run did.
        delayed = r.fp8_mlp and r.fp8_mlp_scaling == "delayed"
        self.register_buffer("fp8_amax", torch.zeros(2, 2) if delayed else None)

    def forward(self, x: Tensor) -> Tensor:
        if self.fp8_amax is not None and self.c_fc.fp8_dynamic and self.training:
            return delayed_fp8_mlp(x, self.c_fc.weight, self.c_proj.weight, self.fp8_amax)
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, r: Recipe, layer: int, rotary: Rotary):
        super().__init__()
        key_offset = r.key_offset and r.window_pattern[layer] == "L"
        self.attn = None if layer in r.no_attn_layers else CausalSelfAttention(r, key_offset, rotary)
        self.mlp = None if layer in r.no_mlp_layers else MLP(r)
        self.lambdas = nn.Parameter(torch.tensor([1.0, 0.0]))  # x = l0*x + l1*x0

    def forward(self, x: Tensor, ve: Tensor | None, x0: Tensor, window, not_start: Tensor | None = None) -> Tensor:
        x = self.lambdas[0] * x + self.lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(norm(x), ve, window, not_start)
        return x + self.mlp(norm(x)) if self.mlp is not None else x


class GPT(nn.Module):
    """`attention="flex"` uses FlexAttention block masks (GPU); `"dense"` a boolean mask with SDPA (anywhere)."""

    def __init__(self, r: Recipe, attention: str = "dense"):
        super().__init__()
        if attention not in ("flex", "dense"):
            raise ValueError(f"attention back-end {attention!r}: expected 'flex' or 'dense'")
        self.recipe, self.attention = r, attention
        # tied_head: one table of padded_vocab rows (the rows past the vocabulary are never looked up), initialised
        # small since it is the head too (upstream record 51's 0.005), in place of N(0, 1) and a zero head
        self.embed = nn.Embedding(r.padded_vocab if r.tied_head else r.vocab_size, r.model_dim)
        self.value_embeds = nn.ModuleList(nn.Embedding(r.vocab_size, r.model_dim) for _ in range(r.value_embeds))
        rotary = Rotary(r.head_dim, max(r.seq_len, r.val_seq_len), r.rotary_base)  # shared by every layer
        self.blocks = nn.ModuleList(Block(r, i, rotary) for i in range(r.num_layers))
        fp8 = (r.fp8_x_scale, r.fp8_w_scale, r.fp8_grad_scale) if r.fp8_head else None
        self.lm_head = CastedLinear(r.model_dim, r.padded_vocab, fp8_scales=fp8, zero_init=True)
        if r.tied_head:
            nn.init.normal_(self.embed.weight, std=TIED_INIT_STD)
            self.lm_head.weight = self.embed.weight
        self.skip_weights = nn.Parameter(torch.ones(r.num_layers // 2))
        # Smear: x[t] += lambda * sigmoid(w . x[t][:gate_dims]) * x[t-1] on the token embeddings (lambda starts at 0)
        self.smear_gate_w = gate_weight(1, r.gate_dims) if r.smear else None
        self.smear_lambda = nn.Parameter(torch.zeros(1)) if r.smear else None
        self.ve_table = [r.value_embed_layer(i) for i in range(r.num_layers)]
        self.long_layer = [c == "L" for c in r.window_pattern]
        self._window_tensors: dict = {}  # (blocks, device) -> int32 tensor, see `window`
        # Multi-token prediction weights of the current step, rewritten in place by `set_step` so a compiled model
        # reads them without recompiling. Not persistent: checkpoints and warm-up restores need not carry them.
        mtp = torch.tensor(r.mtp_weights, dtype=torch.float32) if r.mtp_weights else None
        self.register_buffer("mtp_start", mtp, persistent=False)
        self.register_buffer("mtp_w", None if mtp is None else mtp.clone(), persistent=False)
        # Sampled softmax (sampled_head_rows): the head rows the current step's loss uses (0: all), set by `set_step`
        # (a compiled model compiles one graph for each value), and the most distinct targets any step had beyond them
        self.head_rows = 0
        self.register_buffer("head_left_out", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("head_offset", torch.zeros((), dtype=torch.long), persistent=False)  # its negatives' start

    def window(self, step: int) -> int | Tensor:
        """The long window at `step` in blocks; for FlexAttention an int32 tensor, so a growing window never
        recompiles, made once per window: a new one each step is a host-to-device copy that stalls the GPU."""
        r = self.recipe
        w = long_window_blocks(step, r.steps, r.window_ramp_tokens, r.attn_block_size)
        if self.attention == "flex":
            device = self.embed.weight.device
            cached = self._window_tensors.get((w, device))
            if cached is None:
                cached = self._window_tensors[(w, device)] = torch.tensor(w, dtype=torch.int32, device=device)
            return cached
        return w

    def windows(self, inputs: Tensor, long_blocks: int | Tensor) -> tuple:
        """(long window, short window) of the back-end over the row `inputs`: what each layer attends through."""
        lists = BlockLists.build(inputs, self.recipe.attn_block_size)
        window, mask = (FlexWindow, flex_block_mask) if self.attention == "flex" else (DenseWindow, dense_mask)
        return window(mask(lists, long_blocks)), window(mask(lists, short_window_blocks(long_blocks)))

    def forward(self, inputs: Tensor, targets: Tensor | None, long_blocks: int | Tensor) -> Tensor:
        """inputs (T,) token ids -> mean cross-entropy against targets (in training with multi-token prediction,
        plus its weighted extra terms), or the capped logits if targets is None."""
        return self.head_loss(self.features(inputs, long_blocks), targets)

    def features(self, inputs: Tensor, long_blocks: int | Tensor) -> Tensor:
        """The trunk's final hidden states (1, T, model_dim): the first half of `forward`."""
        if inputs.ndim != 1:
            raise ValueError(f"inputs must be one row of tokens (1-D), got shape {tuple(inputs.shape)}")
        return self.trunk(inputs, *self.windows(inputs, long_blocks))

    def head_loss(self, x: Tensor, targets: Tensor | None) -> Tensor:
        """The second half of `forward`: the head and the loss on the trunk's hidden states."""
        extra = mtp_targets(targets, self.mtp_w.numel()) if targets is not None and self.mtp_active() else None
        weight = self.lm_head.weight
        if targets is not None and self.head_rows and self.training and torch.is_grad_enabled():
            ids, targets, extra, left_out = candidate_rows(targets, extra, weight.size(0), self.head_rows,
                                                           self.head_offset)
            self.head_left_out.copy_(torch.maximum(self.head_left_out, left_out))
            weight = weight.index_select(0, ids)  # its gradient lands in those rows of the head
        if targets is not None and self.fused_head_loss_active():
            r = self.recipe
            return fp8_softcap_cross_entropy(norm(x), weight, targets, *self.lm_head.fp8_scales,
                                             r.logit_cap, r.logit_cap_div, extra, None if extra is None else self.mtp_w)
        if targets is not None and extra is None and not torch.is_grad_enabled():
            return self.sliced_loss(x, targets)
        logits = self.head(x, weight)
        if targets is None:
            return logits
        logits, targets = logits.view(-1, logits.size(-1)), targets.view(-1)
        if extra is not None:
            return mtp_cross_entropy(logits, targets, extra, self.mtp_w)
        return F.cross_entropy(logits, targets)

    def sliced_loss(self, x: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy without gradients (validation), the head and loss over slices of LOSS_SLICE_TOKENS
        positions: one slice's logits exist at a time, not a whole val row's (262,144 x 50,304 in bf16: 24.6 GiB)."""
        x, targets = x.reshape(-1, x.size(-1)), targets.reshape(-1)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for i in range(0, targets.numel(), LOSS_SLICE_TOKENS):  # unrolled by torch.compile (static sizes)
            logits = self.head(x[i:i + LOSS_SLICE_TOKENS])
            total = total + F.cross_entropy(logits, targets[i:i + LOSS_SLICE_TOKENS], reduction="sum")
        return total / targets.numel()

    def mtp_active(self) -> bool:
        """Multi-token prediction is on in training with gradients (validation and sampling: next token alone)."""
        return self.mtp_w is not None and self.training and torch.is_grad_enabled()

    def set_step(self, step: int) -> None:
        """Set what changes with the step: the MTP weights (in place: a host-to-device copy waits for the GPU) and the
        sampled head's row count."""
        r = self.recipe
        if self.mtp_w is not None:
            torch.mul(self.mtp_start, mtp_decay(step, r.steps, r.mtp_end_frac), out=self.mtp_w)
        self.head_rows = rows_at(step, r.steps, r.sampled_head_rows, r.sampled_head_end_frac)
        if self.head_rows:
            self.head_offset.fill_(negatives_offset(step, self.head_rows, self.lm_head.weight.size(0)))

    def roll_fp8_amax(self, world_size: int = 1) -> None:
        """After each optimiser step: this step's FP8 maxima become the previous step's, and the current row restarts
        at 0 (the MLPs with delayed scaling; nothing without them). Across ranks the maxima are the maxima over all of
        them, so that every rank casts with the same scales and N ranks train as one rank with N accumulation steps."""
        states = [b for n, b in self.named_buffers() if n.endswith("fp8_amax")]
        if not states:
            return
        current = [b[1] for b in states]
        if world_size > 1:
            stacked = torch.stack(current)
            dist.all_reduce(stacked, op=dist.ReduceOp.MAX)
            current = list(stacked.unbind())
        torch._foreach_copy_([b[0] for b in states], current)
        torch._foreach_zero_([b[1] for b in states])

    def fused_head_loss_active(self) -> bool:
        return (self.recipe.fused_head_loss and self.lm_head.fp8_scales is not None and self.training
                and torch.is_grad_enabled())

    def smear_embeddings(self, x: Tensor, inputs: Tensor, previous: Tensor | None = None) -> Tensor:
        """x (T, dim) token embeddings -> each plus a gated share of the previous position's embedding, except at
        document starts (<|endoftext|>). `previous`: the embedding before inputs[0] (incremental decoding) or None."""
        starts = inputs == EOT
        prev = x[:-1] if previous is None else torch.cat([previous.type_as(x)[None], x[:-1]])
        cur, at_start = (x[1:], starts[1:]) if previous is None else (x, starts)
        gate = torch.sigmoid(F.linear(cur[:, : self.recipe.gate_dims], self.smear_gate_w.type_as(x)))
        gate = self.smear_lambda.type_as(x) * gate * (~at_start)[:, None].to(x.dtype)  # 0 at document starts
        mixed = cur + gate * prev
        return mixed if previous is not None else torch.cat([x[:1], mixed])

    def trunk(self, inputs: Tensor, long_window, short_window, previous_token: Tensor | None = None) -> Tensor:
        """Embeddings and blocks: (T,) token ids -> (1, T, model_dim) final hidden states. `previous_token` (1,):
        the token before inputs[0] (incremental decoding), or None at the start of a sequence."""
        ve = [table(inputs)[None] for table in self.value_embeds]
        x = self.embed(inputs)
        if self.smear_gate_w is not None:
            previous = self.embed(previous_token)[0] if previous_token is not None else None
            x = self.smear_embeddings(x, inputs, previous)
        x = x0 = norm(x[None])
        not_start = inputs != EOT
        skips = []
        n = len(self.skip_weights)
        for i, block in enumerate(self.blocks):
            if i >= n:  # U-net: the second half adds the first half's outputs, last in first out
                x = x + self.skip_weights[i - n] * skips.pop()
            t = self.ve_table[i]
            x = block(x, ve[t] if t is not None else None, x0, long_window if self.long_layer[i] else short_window,
                      not_start)
            if i < n:
                skips.append(x)
        return x

    def head(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """Capped logits over the head's rows, or over `weight`'s (the sampled head's rows) with the same casts."""
        lin = self.lm_head
        if weight is None or weight is lin.weight:
            logits = lin(norm(x)).float()
        elif lin.fp8_scales is not None and self.training:
            logits = fp8_linear(norm(x), weight, *lin.fp8_scales).float()
        else:
            logits = F.linear(norm(x), weight.type_as(x)).float()
        r = self.recipe
        return r.logit_cap * torch.sigmoid(logits / r.logit_cap_div)

    def forward_cached(self, inputs: Tensor, cache: "KVCache", long_blocks: int, last_only: bool = False) -> Tensor:
        """inputs (T,) at positions cache.length ... cache.length + T - 1, after those in `cache` (which this extends)
        -> capped logits (T, padded_vocab), or (1, padded_vocab) for the last position only. Same rule as the full
        pass with window `long_blocks` (short layers: half), so a sequence fed in chunks gets one full pass's logits."""
        if inputs.ndim != 1 or inputs.numel() == 0:
            raise ValueError(f"inputs must be a non-empty row of tokens (1-D), got shape {tuple(inputs.shape)}")
        T = inputs.numel()
        positions = torch.arange(cache.length, cache.length + T, device=inputs.device)
        docs = cache.doc + document_ids(inputs)
        long_w = int(long_blocks)
        block = self.recipe.attn_block_size
        long_window, short_window = (CachedWindow(cache, positions, docs, w, block, self.recipe.rotary_base)
                                     for w in (long_w, short_window_blocks(long_w)))
        x = self.trunk(inputs, long_window, short_window, cache.last_token if cache.length else None)
        cache.length += T
        cache.doc = int(docs[-1])
        cache.last_token = inputs[-1:]
        return self.head(x[:, -1:] if last_only else x)[0]

    def embedding_tables(self) -> list[nn.Embedding]:
        """Token and value embedding tables (kept in bf16 on the GPU; a tied head with them)."""
        return [self.embed, *self.value_embeds]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Each parameter in exactly one group; a tied table in "head" (Adam at lr_head, as upstream)."""
        blocks = list(self.blocks.named_parameters())
        tied = self.lm_head.weight is self.embed.weight
        return {"muon": [p for n, p in blocks if p.ndim >= 2 and not n.endswith(GATE_SUFFIX)],
                "embed": [t.weight for t in self.embedding_tables() if not (tied and t is self.embed)],
                "head": [self.lm_head.weight],
                "scalar": [p for n, p in self.named_parameters() if p.ndim < 2 or n.endswith(GATE_SUFFIX)]}
