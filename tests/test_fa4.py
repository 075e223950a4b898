"""attention_kernel = "fa4" on CPU: the document bounds, the token-window rule of the dense twin, the ops' fake
shapes (what torch.compile traces), and a model of that rule (full pass vs chunked decoding, block rule vs token
rule). The kernels themselves are checked against the twin in tests/gpu."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from speedrun.data.tokenizer import EOT
from speedrun.model.fa4 import doc_bounds, fa4_varlen_bwd, fa4_varlen_fwd, max_docs, varlen_dense_mask, window_tokens
from speedrun.model.gpt import GPT, KVCache
from speedrun.recipe import load_recipe


def rule(starts: list[int], T: int, left: int) -> torch.Tensor:
    """The rule stated directly: k <= q, q - k <= left, no document start in (k, q]."""
    m = torch.zeros(T, T, dtype=torch.bool)
    for q in range(T):
        for k in range(max(0, q - left), q + 1):
            m[q, k] = not any(k < s <= q for s in starts)
    return m


def test_doc_bounds_pad_with_the_row_length():
    x = torch.randint(0, 1000, (300,), dtype=torch.int32)
    x[[5, 40, 41, 200]] = EOT
    cu = doc_bounds(x)
    assert cu.dtype == torch.int32 and cu.shape == (max_docs(300) + 1,)
    assert cu[:5].tolist() == [0, 5, 40, 41, 200] and (cu[5:] == 300).all()
    x[0] = EOT  # a row that starts with <|endoftext|>: one start at 0, not two
    assert doc_bounds(x)[:6].tolist() == [0, 5, 40, 41, 200, 300]


def test_a_row_with_more_documents_than_slots_runs_its_last_ones_as_one():
    T = 2048
    x = torch.ones(T, dtype=torch.int32)
    x[::4] = EOT  # 512 documents, 256 slots
    cu = doc_bounds(x)
    assert max_docs(T) == 256 and cu[-2].item() == 255 * 4 and cu[-1].item() == T
    m = varlen_dense_mask(cu, T)
    assert m[T - 1, 255 * 4] and not m[255 * 4, 255 * 4 - 1]


@pytest.mark.parametrize("w,short", [(1, False), (2, True), (3, False), (50, False)])
def test_dense_twin_is_the_rule(w, short):
    T, bs = 96, 16
    g = torch.Generator().manual_seed(w)
    x = torch.randint(0, 1000, (T,), generator=g, dtype=torch.int32)
    starts = [7, 30, 31, 64]
    x[starts] = EOT
    left = window_tokens(w, short, bs)
    assert left == (max(1, w // 2) if short else w) * bs - 1
    assert torch.equal(varlen_dense_mask(doc_bounds(x), left), rule(starts, T, left))


def test_fake_ops_give_the_kernels_shapes():
    with FakeTensorMode():
        q = torch.empty(512, 6, 128, dtype=torch.bfloat16)
        cu = torch.zeros(257, dtype=torch.int32)
        out, lse = fa4_varlen_fwd(q, q, q, cu, torch.tensor(3), False, 128, 0.12)
        grads = fa4_varlen_bwd(out, q, q, q, out, lse, cu, torch.tensor(3), True, 128, 0.12)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert lse.shape == (6, 512) and lse.dtype == torch.float32
    assert [g.shape for g in grads] == [q.shape] * 3
    with FakeTensorMode(), pytest.raises(ValueError, match="window must be a CPU tensor"):  # caught when traced
        q = torch.empty(512, 6, 128, dtype=torch.bfloat16, device="cuda")
        bounds = torch.zeros(257, dtype=torch.int32, device="cuda")
        fa4_varlen_fwd(q, q, q, bounds, torch.tensor(3, device="cuda"), False, 128, 0.12)


def test_the_model_gives_fa4_its_window_on_the_host():
    r = load_recipe("tiny", ["attention_kernel=fa4"])
    m = GPT(r, attention="fa4")
    w = m.window(r.steps)
    assert isinstance(w, torch.Tensor) and w.device.type == "cpu" and w.dtype == torch.int32
    assert m.window(r.steps) is w  # made once per window


def small_model(over):
    r = load_recipe("tiny", over)
    torch.manual_seed(0)
    m = GPT(r)
    for n, p in m.named_parameters():  # give the zero-initialised projections values
        if n.endswith("c_proj.weight") or n == "lm_head.weight":
            torch.nn.init.normal_(p, std=0.02)
    return m.eval()


def test_token_window_model_decodes_in_chunks_as_in_one_pass():
    m = small_model(["attention_kernel=fa4"])
    T = m.recipe.seq_len
    x = torch.randint(0, 50000, (T,), generator=torch.Generator().manual_seed(1))
    x[::97] = EOT
    with torch.no_grad():
        for w in (2, 3):
            full = m(x, None, w)
            cache = KVCache()
            chunks = torch.cat([m.forward_cached(x[a:a + 200], cache, w) for a in range(0, T, 200)])
            assert (full.reshape(chunks.shape) - chunks).abs().max() < 1e-4


def test_token_windows_see_more_than_block_windows():
    """Same weights: the rules agree where the window covers every document, and differ where it binds."""
    token, block = small_model(["attention_kernel=fa4"]), small_model([])
    T = token.recipe.seq_len
    x = torch.randint(0, 50000, (T,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(token(x, None, 2 * T // 128), block(x, None, 2 * T // 128), atol=1e-5)
        assert not torch.allclose(token(x, None, 2), block(x, None, 2), atol=1e-3)
    with pytest.raises(ValueError, match="does not run attention_kernel='fa4'"):
        GPT(token.recipe, attention="flex")
