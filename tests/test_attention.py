"""Document-causal, block-windowed attention masks: block lists -> dense mask / FlexAttention BlockMask vs the rule.

The rule (spec, "Attention masking"): q sees k iff k <= q, same document (doc id = count of EOT up to and
including the position) and block(q) - block(k) < w.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import (
    BlockLists,
    dense_attention,
    dense_mask,
    document_ids,
    flex_block_mask,
    reference_mask,
    short_window_blocks,
)
from speedrun.optim.schedule import long_window_blocks

assert EOT == 50256


# --- token sequences ----------------------------------------------------------------------------------------------
def tokens_with_eots(T: int, eot_positions, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, EOT, (T,), generator=g)  # never EOT itself
    pos = torch.as_tensor(list(eot_positions), dtype=torch.long)
    if pos.numel():
        tokens[pos] = EOT
    return tokens


def tokens_with_doc_lengths(T: int, mean_len: int, seed: int) -> torch.Tensor:
    """EOT starts every document (as in the data); lengths drawn around mean_len."""
    g = torch.Generator().manual_seed(seed)
    starts, p = [], 0
    while p < T:
        starts.append(p)
        p += int(torch.randint(max(1, mean_len // 4), 2 * mean_len, (1,), generator=g))
    return tokens_with_eots(T, starts, seed)


def sequences(bs: int, nb: int) -> dict[str, torch.Tensor]:
    """Named sequences of nb blocks of bs tokens covering the awkward document layouts."""
    T = bs * nb
    g = torch.Generator().manual_seed(1000 * bs + nb)
    rand_pos = torch.randperm(T, generator=g)[: max(1, T // 50)].tolist()
    return {
        "no_eot": tokens_with_eots(T, [], 1),
        "eot_at_0_only": tokens_with_eots(T, [0], 2),
        "short_docs": tokens_with_eots(T, range(0, T, max(2, bs // 3)), 3),  # many docs per block
        "long_doc_then_short": tokens_with_eots(T, [3, 3 + 3 * bs + 5, T - bs // 2], 4),  # > 3 blocks long
        "boundary_at_block_start": tokens_with_eots(T, [2 * bs, 3 * bs, min(T - 1, 5 * bs)], 5),
        "boundary_at_block_end": tokens_with_eots(T, [bs - 1, 2 * bs - 1, T - 1], 6),
        "last_token_eot": tokens_with_eots(T, [T - 1], 7),
        "every_token_eot": torch.full((T,), EOT),
        "random_eots": tokens_with_eots(T, rand_pos, 8),
        "random_docs": tokens_with_doc_lengths(T, max(2, bs * 3 // 2), 9),
    }


CASES = [(bs, nb, name) for bs, nb in [(16, 9), (128, 6)] for name in sequences(bs, nb)]


# --- expanding a FlexAttention BlockMask by hand --------------------------------------------------------------------
def expand_block_mask(bm, T: int) -> torch.Tensor:
    """(T, T) boolean from a BlockMask's kv lists: listed full blocks wholly True, listed partial blocks mask_mod."""
    q_bs, kv_bs = bm.BLOCK_SIZE
    nq, nk = -(-T // q_bs), -(-T // kv_bs)
    kv_num, kv_idx = bm.kv_num_blocks[0, 0], bm.kv_indices[0, 0]
    assert bm.full_kv_num_blocks is not None, "expected explicit full blocks"
    full_num, full_idx = bm.full_kv_num_blocks[0, 0], bm.full_kv_indices[0, 0]
    assert kv_num.shape == (nq,) and full_num.shape == (nq,)
    partial_blk = torch.zeros(nq, nk, dtype=torch.bool)
    full_blk = torch.zeros(nq, nk, dtype=torch.bool)
    for i in range(nq):
        p = kv_idx[i, : int(kv_num[i])].long()
        f = full_idx[i, : int(full_num[i])].long()
        assert len(set(p.tolist())) == p.numel(), f"q block {i}: a partial kv block listed twice"
        assert len(set(f.tolist())) == f.numel(), f"q block {i}: a full kv block listed twice"
        assert not set(p.tolist()) & set(f.tolist()), f"q block {i}: a kv block is both full and partial"
        partial_blk[i, p] = True
        full_blk[i, f] = True
    expand = lambda m: m.repeat_interleave(q_bs, 0).repeat_interleave(kv_bs, 1)[:T, :T]
    pos = torch.arange(T)
    mod = bm.mask_mod(torch.tensor(0), torch.tensor(0), pos[:, None], pos[None, :])
    mod = torch.as_tensor(mod).expand(T, T).bool()
    return expand(full_blk) | (expand(partial_blk) & mod)


def first_mismatch(a: torch.Tensor, b: torch.Tensor) -> str:
    bad = (a != b).nonzero()
    if not len(bad):
        return "none"
    q, k = bad[0].tolist()
    return f"{len(bad)} positions differ, first (q={q}, k={k}): got {bool(a[q, k])}, want {bool(b[q, k])}"


# --- the reference itself states the rule ----------------------------------------------------------------------------
def test_document_ids_count_eots_inclusive():
    t = tokens_with_eots(10, [0, 4, 5])
    assert document_ids(t).tolist() == [1, 1, 1, 1, 2, 3, 3, 3, 3, 3]
    assert document_ids(tokens_with_eots(5, [])).tolist() == [0] * 5


def test_reference_mask_on_a_hand_example():
    # bs 2, T 8, EOT at 3: docs [0,0,0,1,1,1,1,1]; window 2 blocks
    t = tokens_with_eots(8, [3])
    m = reference_mask(t, 2, 2)
    want = torch.zeros(8, 8, dtype=torch.bool)
    for q in range(8):
        for k in range(8):
            same_doc = (q < 3) == (k < 3)
            want[q, k] = k <= q and same_doc and q // 2 - k // 2 < 2
    assert torch.equal(m, want)


# --- (1) + (2): both back-ends equal the rule, every window ---------------------------------------------------------
@pytest.mark.parametrize("bs,nb,name", CASES)
def test_dense_and_flex_masks_equal_reference_every_window(bs, nb, name):
    tokens = sequences(bs, nb)[name]
    lists = BlockLists.build(tokens, bs)
    T = nb * bs
    for w in range(1, nb + 1):
        ref = reference_mask(tokens, w, bs)
        dense = dense_mask(lists, w)
        assert dense.shape == (T, T) and dense.dtype == torch.bool
        assert torch.equal(dense, ref), f"dense, window {w}: {first_mismatch(dense, ref)}"
        flex = expand_block_mask(flex_block_mask(lists, w), T)
        assert torch.equal(flex, ref), f"flex, window {w}: {first_mismatch(flex, ref)}"
    # a window wider than the sequence is the same as the whole sequence
    assert torch.equal(dense_mask(lists, nb + 3), reference_mask(tokens, nb, bs))


@pytest.mark.parametrize("bs,nb,name", CASES)
def test_block_lists_are_exact(bs, nb, name):
    """The block lists alone are exact (what the compiled kernels rely on for speed): after truncation to w, a
    listed full block is wholly allowed, a listed partial block is partly allowed, and every key block with an
    allowed pair is listed -- so no needless blocks and, even with a mask_mod that ignored the window, nothing
    beyond the window."""
    tokens = sequences(bs, nb)[name]
    lists = BlockLists.build(tokens, bs)
    for w in range(1, nb + 1):
        ref = reference_mask(tokens, w, bs).view(nb, bs, nb, bs)
        allowed_any = ref.any(dim=(1, 3))
        allowed_all = ref.all(dim=(1, 3))
        partial, full = lists.truncated(w)
        for i in range(nb):
            f = lists.full_idx[i, : int(full[i])].tolist()
            p = lists.partial_idx[i, : int(partial[i])].tolist()
            assert all(allowed_all[i, j] for j in f), f"w={w}, q block {i}: full block not wholly allowed"
            assert all(allowed_any[i, j] and not allowed_all[i, j] for j in p), \
                f"w={w}, q block {i}: partial block {p} wholly allowed or wholly masked"
            assert sorted(f + p) == allowed_any[i].nonzero().flatten().tolist(), f"w={w}, q block {i}: lists"
            assert all(i - j < w for j in f + p)


@pytest.mark.parametrize("bs,nb,name", CASES)
def test_masks_never_see_the_future_or_another_document_and_always_see_self(bs, nb, name):
    tokens = sequences(bs, nb)[name]
    lists = BlockLists.build(tokens, bs)
    T = nb * bs
    pos = torch.arange(T)
    docs = document_ids(tokens)
    future = pos[None, :] > pos[:, None]
    other_doc = docs[:, None] != docs[None, :]
    for w in range(1, nb + 1):
        for label, m in [("dense", dense_mask(lists, w)), ("flex", expand_block_mask(flex_block_mask(lists, w), T))]:
            assert not (m & future).any(), f"{label} w={w}: a position attends to the future"
            assert not (m & other_doc).any(), f"{label} w={w}: a position attends to another document"
            assert m.diagonal().all(), f"{label} w={w}: a position does not attend to itself"
            blk = pos // bs
            assert not (m & (blk[:, None] - blk[None, :] >= w)).any(), f"{label} w={w}: beyond the window"


def test_window_actually_limits_a_long_document():
    """Not vacuous: inside one long document, the window decides how far back a position sees."""
    bs, nb = 16, 6
    tokens = tokens_with_eots(bs * nb, [])
    lists = BlockLists.build(tokens, bs)
    for w in range(1, nb + 1):
        m = dense_mask(lists, w)
        last = bs * nb - 1
        # the last position sees exactly the last w blocks
        assert m[last].sum().item() == w * bs
        assert m[last, last - w * bs + 1] and (w == nb or not m[last, last - w * bs])


def _argsorted(dense: torch.Tensor) -> tuple[list, list]:
    """What the lists were before part 34 (a stable argsort, then flipped): True columns highest first, then False."""
    num = dense.sum(-1, dtype=torch.int32)
    return num.tolist(), dense.argsort(dim=-1, stable=True).flip(-1).tolist()


@pytest.mark.parametrize("bs,nb,name", CASES)
def test_sort_free_lists_equal_an_argsort_and_torchs_transpose(bs, nb, name):
    """The lists made without a sort (a sort kernel compiles for 25 s on the GPU) hold the very order an argsort gives,
    every entry (the unused tail too), and the BlockMask's query-block lists (the backward pass's) equal what
    `BlockMask.from_kv_blocks` computes from the same key-block lists with torch's argsort."""
    from torch.nn.attention.flex_attention import BlockMask

    tokens = sequences(bs, nb)[name]
    lists = BlockLists.build(tokens, bs)
    docs = document_ids(tokens)
    low, high = docs.view(nb, bs)[:, 0], docs.view(nb, bs)[:, -1]
    blk = torch.arange(nb)
    any_ = (blk[:, None] >= blk) & (low[:, None] <= high) & (high[:, None] >= low)
    all_ = (blk[:, None] > blk) & (low[:, None] == high) & (high[:, None] == low)
    assert (lists.partial_num.tolist(), lists.partial_idx.tolist()) == _argsorted(any_ & ~all_)
    assert (lists.full_num.tolist(), lists.full_idx.tolist()) == _argsorted(all_)
    for lst, num, rank in [(lists.partial_idx, lists.partial_num, lists.partial_rank),
                           (lists.full_idx, lists.full_num, lists.full_rank)]:
        for i in range(nb):  # rank: each listed block's place, nb for the rest
            want = torch.full((nb,), nb, dtype=torch.int32)
            want[lst[i, : int(num[i])].long()] = torch.arange(int(num[i]), dtype=torch.int32)
            assert torch.equal(rank[i], want)
    for w in range(1, nb + 1):
        ours = flex_block_mask(lists, w)
        theirs = BlockMask.from_kv_blocks(ours.kv_num_blocks, ours.kv_indices, ours.full_kv_num_blocks,
                                          ours.full_kv_indices, BLOCK_SIZE=bs, mask_mod=ours.mask_mod)
        for field in ("q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices"):
            a, b = getattr(ours, field), getattr(theirs, field)
            assert a.dtype == b.dtype == torch.int32 and a.is_contiguous(), field
            assert torch.equal(a, b), f"window {w}: {field} differs from torch's"
        assert ours.seq_lengths == theirs.seq_lengths and ours.BLOCK_SIZE == theirs.BLOCK_SIZE


def test_block_lists_layout_for_a_known_sequence():
    """bs 4, 4 blocks, EOT at 0 and 6: block docs (1,1),(1,2),(2,2),(2,2)."""
    tokens = tokens_with_eots(16, [0, 6])
    L = BlockLists.build(tokens, 4)
    # block 3 (doc 2 only): full = [2], partial = [3 (diagonal), 1 (where doc 2 starts)]
    assert L.full_num.tolist() == [0, 0, 0, 1]
    assert L.full_idx[3, :1].tolist() == [2]
    assert L.partial_num.tolist() == [1, 2, 2, 2]
    assert L.partial_idx[3, :2].tolist() == [3, 1]
    assert L.partial_idx[2, :2].tolist() == [2, 1]
    assert L.partial_idx[1, :2].tolist() == [1, 0]
    assert L.partial_num.dtype == torch.int32 and L.partial_idx.dtype == torch.int32


def test_build_rejects_a_length_not_multiple_of_block():
    with pytest.raises(ValueError, match="multiple"):
        BlockLists.build(tokens_with_eots(100, [0]), 16)


def test_tensor_window_gives_the_same_masks_as_int_window():
    """The GPU path passes the window as an int32 tensor (no recompiles); it must mean the same."""
    bs, nb = 16, 8
    tokens = tokens_with_doc_lengths(bs * nb, 30, seed=3)
    lists = BlockLists.build(tokens, bs)
    for w in range(1, nb + 1):
        wt = torch.tensor(w, dtype=torch.int32)
        assert [t.tolist() for t in lists.truncated(wt)] == [t.tolist() for t in lists.truncated(w)]
        flex = expand_block_mask(flex_block_mask(lists, wt), bs * nb)
        assert torch.equal(flex, reference_mask(tokens, w, bs))


def window_blocks_per_layer(pattern: str, long_blocks: int) -> list[int]:
    return [long_blocks if c == "L" else short_window_blocks(long_blocks) for c in pattern]


def test_window_blocks_per_layer_record21_pattern():
    pattern = "LSSSLSSLSSSL"
    assert window_blocks_per_layer(pattern, 14) == [14, 7, 7, 7, 14, 7, 7, 14, 7, 7, 7, 14]
    assert window_blocks_per_layer(pattern, 1) == [1] * 12  # short window is at least one block
    assert window_blocks_per_layer("LS", 3) == [3, 1]


# --- (5) every window of the record-21 schedule, realistic documents ---------------------------------------------------
def record21_windows() -> list[int]:
    longs = sorted({long_window_blocks(s, 1770, 1728, 128) for s in range(1771)})
    return sorted(set(longs) | {max(1, w // 2) for w in longs})


def test_record21_schedule_windows():
    assert record21_windows() == list(range(1, 15))


@pytest.mark.parametrize("seed", [0, 1])
def test_record21_windows_on_realistic_documents(seed):
    bs, nb = 128, 16
    tokens = tokens_with_doc_lengths(bs * nb, 300, seed=seed)
    assert (tokens == EOT).sum() >= 4
    lists = BlockLists.build(tokens, bs)
    for w in record21_windows():
        ref = reference_mask(tokens, w, bs)
        assert torch.equal(dense_mask(lists, w), ref), f"dense, window {w}"
        assert torch.equal(expand_block_mask(flex_block_mask(lists, w), bs * nb), ref), f"flex, window {w}"


# --- FlexAttention (eager, CPU) vs dense attention --------------------------------------------------------------------
def _flex_attention_or_skip():
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"no FlexAttention in this torch: {e}")
    return flex_attention


def _run_flex(flex_attention, q, k, v, bm, scale):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return flex_attention(q, k, v, block_mask=bm, scale=scale)
    except Exception as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"flex_attention does not run eagerly on CPU in torch {torch.__version__}: {type(e).__name__}: {e}")


FLEX_BS, FLEX_NB = 16, 16  # T = 256


def _flex_inputs():
    # one document much longer than any short window (so the window matters), then short ones
    tokens = tokens_with_eots(FLEX_BS * FLEX_NB, [0, 180, 200, 233, 240], seed=11)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, FLEX_BS * FLEX_NB, 16, generator=g) for _ in range(3))
    return tokens, q, k, v


def test_flex_attention_eager_equals_dense_attention_full_window():
    flex_attention = _flex_attention_or_skip()
    tokens, q, k, v = _flex_inputs()
    lists = BlockLists.build(tokens, FLEX_BS)
    w = FLEX_NB
    y_flex = _run_flex(flex_attention, q, k, v, flex_block_mask(lists, w), 0.12)
    y_dense = dense_attention(q, k, v, dense_mask(lists, w), 0.12)
    torch.testing.assert_close(y_flex, y_dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("w", [1, 2, 3, 5, 10])
def test_flex_attention_eager_equals_dense_attention_sliding_window(w):
    """Eager flex_attention applies mask_mod to every pair and ignores the block lists, so this holds only if the
    mask_mod carries the window itself (it once did not: the window was silently lost without compile)."""
    flex_attention = _flex_attention_or_skip()
    tokens, q, k, v = _flex_inputs()
    lists = BlockLists.build(tokens, FLEX_BS)
    y_dense = dense_attention(q, k, v, dense_mask(lists, w), 0.12)
    y_flex = _run_flex(flex_attention, q, k, v, flex_block_mask(lists, w), 0.12)
    torch.testing.assert_close(y_flex, y_dense, atol=1e-5, rtol=1e-5)
    # the GPU path passes the window as an int32 tensor
    y_flex_t = _run_flex(flex_attention, q, k, v, flex_block_mask(lists, torch.tensor(w, dtype=torch.int32)), 0.12)
    torch.testing.assert_close(y_flex_t, y_dense, atol=1e-5, rtol=1e-5)
    # not vacuous: here the window changes the result
    full = dense_attention(q, k, v, dense_mask(lists, FLEX_NB), 0.12)
    assert (full - y_dense).abs().max() > 1e-3


def test_compiled_flex_attention_reads_the_block_lists_as_the_dense_mask_does():
    """The CPU twin of tests/gpu's FlexAttention check: compiled, flex_attention skips the blocks its lists leave out
    and applies no mask_mod in "full" blocks, so there the lists themselves decide the result (eager ignores them).
    Inductor's CPU kernel reads them as the GPU kernel does; the mask is built inside the compiled function, as the
    model builds it. Forward only (FlexAttention has no CPU backward)."""
    flex_attention = _flex_attention_or_skip()
    bs, T = 128, 1024  # the recipes' block size
    tokens = tokens_with_eots(T, [0, 100, 300, 310, 700], seed=3)
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, T, 64, generator=g) for _ in range(3))

    def attend(tokens, q, k, v, window, keep_full):
        mask = flex_block_mask(BlockLists.build(tokens, bs), window)
        mask.full_kv_num_blocks = mask.full_kv_num_blocks * keep_full  # 0: a list lost (the check must see it)
        return flex_attention(q, k, v, block_mask=mask, scale=0.12)

    compiled = torch.compile(attend, dynamic=False, fullgraph=True)
    one = torch.tensor(1, dtype=torch.int32)
    with torch.no_grad():
        for w in (1, 3, 8):
            y = compiled(tokens, q, k, v, torch.tensor(w, dtype=torch.int32), one)  # torch >= 2.11 compiles it on CPU
            torch.testing.assert_close(y, dense_attention(q, k, v, dense_mask(BlockLists.build(tokens, bs), w), 0.12),
                                       atol=1e-5, rtol=1e-5)
        lost = compiled(tokens, q, k, v, torch.tensor(8, dtype=torch.int32), one * 0)
    assert (lost - y).abs().max() > 0.1


def test_dense_attention_matches_explicit_softmax():
    g = torch.Generator().manual_seed(1)
    T, bs = 64, 16
    tokens = tokens_with_eots(T, [0, 20, 50], seed=2)
    mask = dense_mask(BlockLists.build(tokens, bs), 2)
    q, k, v = (torch.randn(1, 2, T, 8, generator=g) for _ in range(3))
    scores = (q @ k.transpose(-1, -2)) * 0.12
    scores = scores.masked_fill(~mask, float("-inf"))
    want = scores.softmax(-1) @ v
    torch.testing.assert_close(dense_attention(q, k, v, mask, 0.12), want, atol=1e-5, rtol=1e-5)
