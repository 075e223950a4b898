"""Attention masking: document-causal + block-granular sliding windows, expressed once, two back-ends.

The rule (what a position may see): query q sees key k iff k <= q, both lie in the same document, and
block(q) - block(k) < w, with blocks of `block_size` tokens and w the window in blocks. It is realised at block
granularity as FlexAttention does it: for each query block, a list of *full* key blocks (every pair allowed,
no per-token check) and a list of *partial* key blocks (checked token by token by the mask_mod),
both ordered nearest first and truncated to the window. `BlockLists` computes those lists once per sequence;
`flex_block_mask` turns them into a FlexAttention BlockMask (GPU path) and `dense_mask` into a (T, T) boolean
mask for `scaled_dot_product_attention` (CPU path). `reference_mask` states the rule directly, for tests.
In training a recipe may cap documents (max_doc_tokens): each piece of a longer document is then a document of
its own here, see `document_starts`.

Paired-head layers (`Recipe.paired_head_layers`) attend over a sequence twice as long: `interleave_heads` makes
heads 2j and 2j+1 one head j whose row 2t + p is head 2j+p at position t, and the same rule applies to the rows
(row r sees row r' iff r' <= r, same document, r // block - r' // block < w), with each position's document id
on both of its rows (`BlockLists.paired`) and the window in blocks unchanged (so it spans half as many positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from speedrun.data.tokenizer import EOT


def document_starts(tokens: Tensor, max_doc_tokens: int | Tensor = 0) -> Tensor:
    """(T,) bool: where a document starts, i.e. at every <|endoftext|>; with max_doc_tokens = L > 0 also at every
    L-th position of a document, so that piece k of a document (its positions k*L .. (k+1)*L - 1, counted from
    its <|endoftext|>) is a document of its own. A document begun before the row is counted from the row's start.
    Elementwise ops and one scan: no data-dependent shapes, so it compiles into the training step. A 0-d integer
    tensor cap (> 0) is read on the device, so a compiled step takes a new cap without recompiling."""
    eot = tokens == EOT
    if not isinstance(max_doc_tokens, Tensor) and max_doc_tokens <= 0:
        return eot
    pos = torch.arange(tokens.numel(), device=tokens.device)
    doc_start = torch.cummax(torch.where(eot, pos, 0), dim=0).values  # position of the latest EOT (or 0)
    within = pos - doc_start
    return eot | ((within % max_doc_tokens == 0) & (within > 0))


def document_ids(tokens: Tensor, max_doc_tokens: int | Tensor = 0) -> Tensor:
    """Document index of every position: the count of document starts up to and including it (without a cap:
    of <|endoftext|> tokens; with max_doc_tokens, pieces count as documents, see `document_starts`)."""
    return document_starts(tokens, max_doc_tokens).cumsum(0)


def short_window_blocks(long_blocks: int | Tensor) -> int | Tensor:
    """The short window: half the long one, at least one block (an int, or a tensor for compiled code)."""
    if isinstance(long_blocks, Tensor):
        return torch.clamp_min(long_blocks // 2, 1)
    return max(1, long_blocks // 2)


def window_blocks_per_layer(pattern: str, long_blocks: int) -> list[int]:
    """Per-layer window in blocks: 'L' = long, 'S' = the short window."""
    return [long_blocks if c == "L" else short_window_blocks(long_blocks) for c in pattern]


@dataclass
class BlockLists:
    """Per query block, the key blocks that are partially / fully visible, nearest first (FlexAttention layout)."""

    partial_num: Tensor  # (nb,) int32
    partial_idx: Tensor  # (nb, nb) int32, row i: candidate key blocks, highest index first
    full_num: Tensor
    full_idx: Tensor
    docs: Tensor  # (T,) document id per position, for the token-level check in partial blocks
    block_size: int

    @staticmethod
    def build(tokens: Tensor, block_size: int, max_doc_tokens: int = 0) -> "BlockLists":
        """The lists for a row of tokens; documents as `document_ids` defines them (max_doc_tokens: pieces)."""
        return BlockLists.from_docs(document_ids(tokens, max_doc_tokens), block_size)

    @staticmethod
    def from_docs(docs: Tensor, block_size: int) -> "BlockLists":
        """The lists for (T,) non-decreasing document ids (the block-level tests compare id ranges)."""
        T = docs.numel()
        if T % block_size:
            raise ValueError(f"sequence length {T} is not a multiple of the attention block size {block_size}")
        nb = T // block_size
        blk = torch.arange(nb, dtype=torch.int32, device=docs.device)
        causal_any = blk[:, None] >= blk  # some pair (q, k) with k <= q
        causal_all = blk[:, None] > blk  # every pair causal: strictly earlier block
        docs_low = docs.view(nb, block_size)[:, 0].contiguous()
        docs_high = docs.view(nb, block_size)[:, -1].contiguous()
        doc_any = (docs_low[:, None] <= docs_high) & (docs_high[:, None] >= docs_low)  # document ranges overlap
        doc_all = (docs_low[:, None] == docs_high) & (docs_high[:, None] == docs_low)  # both blocks one document
        any_ = causal_any & doc_any
        all_ = causal_all & doc_all
        p_num, p_idx = _ordered(any_ & ~all_)
        f_num, f_idx = _ordered(all_)
        return BlockLists(p_num, p_idx, f_num, f_idx, docs, block_size)

    def paired(self) -> "BlockLists":
        """The lists of the head-pair interleaved sequence (2T rows, row 2t + p = position t of the pair's head p;
        see `interleave_heads`): each position's document id twice. Not recomputed from repeated tokens, where
        a repeated <|endoftext|> would put the second copy of a document's first position in a document of its own."""
        return BlockLists.from_docs(self.docs.repeat_interleave(2), self.block_size)

    def truncated(self, window_blocks: int | Tensor) -> tuple[Tensor, Tensor]:
        """(partial_num, full_num) after keeping only the nearest blocks of a `window_blocks` window.

        At most w-1 full blocks; partial blocks fill the rest of the window, at least one (the diagonal).
        """
        full = torch.clamp_max(self.full_num, window_blocks - 1)
        partial = torch.clamp_max(self.partial_num, torch.clamp_min(window_blocks - self.full_num, 1))
        return partial, full


def windowed_document_causal(docs: Tensor, window_blocks, block_size: int):
    """FlexAttention mask_mod: the whole rule per token pair. The compiled kernels evaluate it only inside
    partial blocks (the block lists already enforce the window); eager flex_attention evaluates it everywhere,
    so it must carry the window too."""

    def mask_mod(b, h, q_idx, kv_idx):
        near = q_idx // block_size - kv_idx // block_size < window_blocks
        return (q_idx >= kv_idx) & (docs[q_idx] == docs[kv_idx]) & near

    return mask_mod


def _ordered(dense: Tensor) -> tuple[Tensor, Tensor]:
    """Dense (nb, nb) block matrix -> (count per row, column indices with the True ones first, highest first)."""
    num = dense.sum(dim=-1, dtype=torch.int32)
    idx = dense.argsort(dim=-1, descending=False, stable=True).flip(-1).to(torch.int32)
    return num.contiguous(), idx.contiguous()


def flex_block_mask(lists: BlockLists, window_blocks: int | Tensor):
    """FlexAttention BlockMask for one window size (GPU back-end)."""
    from torch.nn.attention.flex_attention import BlockMask

    partial, full = lists.truncated(window_blocks)
    return BlockMask.from_kv_blocks(
        partial[None, None], lists.partial_idx[None, None], full[None, None], lists.full_idx[None, None],
        BLOCK_SIZE=lists.block_size,
        mask_mod=windowed_document_causal(lists.docs, window_blocks, lists.block_size),
    )


def dense_mask(lists: BlockLists, window_blocks: int) -> Tensor:
    """(T, T) boolean mask from the same block lists (CPU back-end): full blocks wholly, partial ones per token."""
    partial, full = lists.truncated(window_blocks)
    nb = lists.partial_idx.shape[0]
    rank = torch.arange(nb, device=partial.device)
    full_sel = _scatter_rows(lists.full_idx, rank[None, :] < full[:, None], nb)
    partial_sel = _scatter_rows(lists.partial_idx, rank[None, :] < partial[:, None], nb)
    bs = lists.block_size
    expand = lambda m: m.repeat_interleave(bs, 0).repeat_interleave(bs, 1)
    T = nb * bs
    pos = torch.arange(T, device=partial.device)
    token_rule = (pos[:, None] >= pos[None, :]) & (lists.docs[:, None] == lists.docs[None, :])
    return expand(full_sel) | (expand(partial_sel) & token_rule)


def _scatter_rows(idx: Tensor, keep: Tensor, nb: int) -> Tensor:
    out = torch.zeros(nb, nb, dtype=torch.bool, device=idx.device)
    return out.scatter_(1, idx.long(), keep)


def reference_mask(tokens: Tensor, window_blocks: int, block_size: int, docs: Tensor | None = None) -> Tensor:
    """The rule stated directly (for tests): causal, same document, block distance < window. `docs`: document ids
    to use instead of those of the tokens' <|endoftext|>."""
    T = tokens.numel()
    docs = document_ids(tokens) if docs is None else docs
    pos = torch.arange(T, device=tokens.device)
    blk = pos // block_size
    return (
        (pos[:, None] >= pos[None, :])
        & (docs[:, None] == docs[None, :])
        & (blk[:, None] - blk[None, :] < window_blocks)
    )


def interleave_heads(x: Tensor) -> Tensor:
    """(B, T, H, D) -> (B, 2T, H/2, D): the pair of heads (2j, 2j+1) becomes head j of a sequence twice as long
    whose row 2t + p holds head 2j + p at position t, so each query meets both heads' keys of every position in
    one softmax. A view that splits H, then a reshape that merges T with the pair (one pointwise copy, which
    inductor may fuse with the elementwise op that made x: it did for v in a CPU lowering)."""
    B, T, H, D = x.shape
    return x.view(B, T, H // 2, 2, D).transpose(2, 3).reshape(B, 2 * T, H // 2, D)


def deinterleave_heads(y: Tensor) -> Tensor:
    """The inverse of `interleave_heads`: (B, 2T, H/2, D) -> (B, T, H, D)."""
    B, T2, half, D = y.shape
    return y.view(B, T2 // 2, 2, half, D).transpose(2, 3).reshape(B, T2 // 2, 2 * half, D)


def dense_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float) -> Tensor:
    """Reference attention: q, k, v (B, H, T, D); mask (T, T) boolean."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
