"""Attention masking: document-causal + block-granular sliding windows, expressed once, two back-ends.

The rule: query q sees key k iff k <= q, both lie in the same document, and block(q) - block(k) < w (blocks of
`block_size` tokens, w the window in blocks). Realised as FlexAttention does it: per query block, a list of *full*
key blocks (no per-token check) and of *partial* key blocks (checked per token by the mask_mod), both nearest first
and truncated to the window: `BlockLists`, shared by `flex_block_mask` (GPU) and `dense_mask` (CPU, SDPA).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from speedrun.data.tokenizer import EOT


def document_ids(tokens: Tensor) -> Tensor:
    """Document index of every position: the count of <|endoftext|> tokens up to and including it."""
    return (tokens == EOT).cumsum(0)


def short_window_blocks(long_blocks: int | Tensor) -> int | Tensor:
    """The short window: half the long one, at least one block (an int, or a tensor for compiled code)."""
    if isinstance(long_blocks, Tensor):
        return torch.clamp_min(long_blocks // 2, 1)
    return max(1, long_blocks // 2)


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
    def build(tokens: Tensor, block_size: int) -> "BlockLists":
        return BlockLists.from_docs(document_ids(tokens), block_size)

    @staticmethod
    def from_docs(docs: Tensor, block_size: int) -> "BlockLists":
        """The lists for (T,) non-decreasing document ids (blocks compare their first and last ids)."""
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

    def truncated(self, window_blocks: int | Tensor) -> tuple[Tensor, Tensor]:
        """(partial_num, full_num) keeping the nearest blocks of a `window_blocks` window: at most w-1 full
        blocks; partial blocks fill the rest of the window, at least one (the diagonal)."""
        full = torch.clamp_max(self.full_num, window_blocks - 1)
        partial = torch.clamp_max(self.partial_num, torch.clamp_min(window_blocks - self.full_num, 1))
        return partial, full


def windowed_document_causal(docs: Tensor, window_blocks, block_size: int):
    """FlexAttention mask_mod: the whole rule per token pair. Compiled kernels evaluate it only in partial blocks
    (the lists enforce the window), eager flex_attention everywhere, so it must carry the window too."""

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
    from torch.nn.attention.flex_attention import BlockMask

    partial, full = lists.truncated(window_blocks)
    return BlockMask.from_kv_blocks(partial[None, None], lists.partial_idx[None, None], full[None, None],
                                    lists.full_idx[None, None], BLOCK_SIZE=lists.block_size,
                                    mask_mod=windowed_document_causal(lists.docs, window_blocks, lists.block_size))


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
    return ((pos[:, None] >= pos[None, :]) & (docs[:, None] == docs[None, :])
            & (blk[:, None] - blk[None, :] < window_blocks))


def dense_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float) -> Tensor:
    """Reference attention: q, k, v (B, H, T, D); mask (T, T) boolean."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
