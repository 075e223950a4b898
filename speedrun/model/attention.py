"""Attention masking: document-causal + block-granular sliding windows, expressed once, two back-ends, and the
window objects through which a layer attends (`FlexWindow`, `DenseWindow`; `decoding.CachedWindow` for generation).

The rule: query q sees key k iff k <= q, both lie in the same document, and block(q) - block(k) < w (blocks of
`block_size` tokens, w the window in blocks). Realised as FlexAttention does it: per query block, a list of *full*
key blocks (no per-token check) and of *partial* key blocks (checked per token by the mask_mod), both nearest first
and truncated to the window: `BlockLists`, shared by `flex_block_mask` (GPU) and `dense_mask` (CPU, SDPA).

No list is made by sorting. The lists are built inside the compiled model, and Inductor turns a sort into a Triton
kernel that took 24.5 s to compile on a lent H200 (the block lists' argsort; torch's own transpose of the lists took
5.8 s more), most of a fresh launch's wait on the compile workers (experiments part 34). `_ordered` counts places
with a matmul against a triangular matrix and puts the indices there with a scatter: the kernels that makes took at
most 3.7 s to compile there.
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
    partial_rank: Tensor  # (nb, nb) int32: [i, j] key block j's place in row i's list, nb where j is not listed
    full_num: Tensor
    full_idx: Tensor
    full_rank: Tensor
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
        p_num, p_idx, p_rank = _ordered(any_ & ~all_, descending=True)
        f_num, f_idx, f_rank = _ordered(all_, descending=True)
        return BlockLists(p_num, p_idx, p_rank, f_num, f_idx, f_rank, docs, block_size)

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


def _ordered(dense: Tensor, descending: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Dense (n, n) boolean -> (count per row, column order, rank), all int32. The order is a stable argsort's: the
    True columns first, then the False ones, each highest first if `descending` else lowest first. rank[i, j] is
    column j's place in row i where dense[i, j] is True, else n. Exact in float32 (and TF32): 0/1 inputs, sums <= n."""
    n = dense.size(-1)
    ones = dense.to(torch.float32)
    col = torch.arange(n, device=dense.device)
    before = (col[:, None] > col[None, :]) if descending else (col[:, None] < col[None, :])  # [k, j]: k comes first
    before = before.to(torch.float32)
    num = ones.sum(-1, keepdim=True)
    ahead = ones @ before  # [i, j]: True columns of row i that come before column j
    # False columns before j: all columns before j less the True ones ((1 - ones) @ before without a second matmul)
    place = torch.where(dense, ahead, num + before.sum(0) - ahead).to(torch.int64)
    order = torch.empty(dense.shape, dtype=torch.int32, device=dense.device)
    order.scatter_(-1, place, col.to(torch.int32).expand(dense.shape))
    rank = torch.where(dense, place, n).to(torch.int32)
    return num[..., 0].to(torch.int32), order, rank


def flex_block_mask(lists: BlockLists, window_blocks: int | Tensor):
    """The FlexAttention BlockMask of a window: the key-block lists truncated to it, and for the backward pass their
    transpose, per key block the query blocks that visit it, lowest first (what `BlockMask.from_kv_blocks` makes
    with an argsort)."""
    from torch.nn.attention.flex_attention import BlockMask

    partial, full = lists.truncated(window_blocks)
    q_partial = _ordered((lists.partial_rank < partial[:, None]).T, descending=False)
    q_full = _ordered((lists.full_rank < full[:, None]).T, descending=False)
    T = lists.docs.numel()
    lead = lambda t: t[None, None]
    return BlockMask(seq_lengths=(T, T), kv_num_blocks=lead(partial), kv_indices=lead(lists.partial_idx),
                     full_kv_num_blocks=lead(full), full_kv_indices=lead(lists.full_idx),
                     q_num_blocks=lead(q_partial[0]), q_indices=lead(q_partial[1]),
                     full_q_num_blocks=lead(q_full[0]), full_q_indices=lead(q_full[1]),
                     BLOCK_SIZE=(lists.block_size, lists.block_size),
                     mask_mod=windowed_document_causal(lists.docs, window_blocks, lists.block_size))


def dense_mask(lists: BlockLists, window_blocks: int) -> Tensor:
    """(T, T) boolean mask from the same block lists (CPU back-end): full blocks wholly, partial ones per token."""
    partial, full = lists.truncated(window_blocks)
    full_sel = lists.full_rank < full[:, None]
    partial_sel = lists.partial_rank < partial[:, None]
    bs = lists.block_size
    expand = lambda m: m.repeat_interleave(bs, 0).repeat_interleave(bs, 1)
    pos = torch.arange(lists.docs.numel(), device=partial.device)
    token_rule = (pos[:, None] >= pos[None, :]) & (lists.docs[:, None] == lists.docs[None, :])
    return expand(full_sel) | (expand(partial_sel) & token_rule)


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


class RowWindow:
    """How a layer attends over one whole row (training, validation): positions 0 .. T-1, nothing before the row.
    `CausalSelfAttention` calls every window the same way (`rotate`, `previous_key`, `attend`); this one's subclasses
    differ in the kernel alone, and `speedrun.model.decoding.CachedWindow` attends against a KV cache instead."""

    def __init__(self, mask):
        self.mask = mask  # FlexWindow: a BlockMask; DenseWindow: a (T, T) boolean tensor

    def rotate(self, rotary: torch.nn.Module, x: Tensor) -> Tensor:
        return rotary(x)

    def previous_key(self, layer: torch.nn.Module, k: Tensor) -> Tensor:
        """The key before the row (the key offset's first shifted key): zeros, as a row starts a sequence."""
        return k.new_zeros(k.size(0), 1, *k.shape[2:])


class FlexWindow(RowWindow):
    """FlexAttention over the window's BlockMask (GPU)."""

    def attend(self, layer: torch.nn.Module, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        from torch.nn.attention.flex_attention import flex_attention

        return flex_attention(q, k, v, block_mask=self.mask, scale=scale)


class DenseWindow(RowWindow):
    """SDPA under the window's boolean mask (any device; the CPU back-end)."""

    def attend(self, layer: torch.nn.Module, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        return dense_attention(q, k, v, self.mask, scale)
