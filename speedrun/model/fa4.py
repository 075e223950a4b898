"""attention_kernel = "fa4": FlashAttention-4's varlen kernels (flash-attn-4, sm90+), documents as sequences.

The rule differs from the block masks' in one way: the window counts tokens, not blocks. Query q sees key k iff
k <= q, both lie in the same document, and q - k < w * block_size (the block rule lets a query see back to the
start of the block w-1 blocks before its own, between (w-1)*bs+1 and w*bs keys; this one always w*bs).

Documents reach the kernel as `cu_seqlens` of a fixed length (`doc_bounds`), so a compiled model never recompiles
and never waits for the GPU to count them: the starts of the first `max_docs(T)` documents, then T repeated (empty
sequences, which the kernel skips). A row with more documents than that runs its last ones as one sequence; the
dense twin (`varlen_dense_mask`: the CPU path and the tests' reference) reads the same bounds, so both sides agree
on every row. The window arrives as a CPU tensor and is read inside the op, so a growing window neither
recompiles nor copies anything to the GPU.
"""

import torch
from torch import Tensor

from speedrun.data.tokenizer import EOT
from speedrun.model.attention import short_window_blocks

FA4_VERSION = "4.0.0b36"  # the ops below call its internal _flash_attn_fwd/_bwd (as torch's FLASH templates do)


def fa4_available(device: torch.device | str | None = None) -> bool:
    """A GPU of compute capability 9.0 or newer and the flash-attn-4 package (its flash_attn.cute kernels)."""
    import importlib.util

    if not torch.cuda.is_available() or torch.cuda.get_device_capability(device)[0] < 9:
        return False
    try:
        return importlib.util.find_spec("flash_attn.cute") is not None
    except ModuleNotFoundError:  # no flash_attn package at all
        return False


def max_docs(T: int) -> int:
    """Sequences the kernel is given for a row of T tokens: T/128 (an average document of 128 tokens; real rows
    hold far fewer), at least 256 (short rows, where the padding costs nothing), at most T."""
    return min(T, max(256, T // 128))


def doc_bounds(inputs: Tensor) -> Tensor:
    """inputs (T,) -> cu_seqlens (max_docs(T) + 1,) int32: document starts (<|endoftext|> positions, and 0), padded
    with T; a fixed shape computed on the device (sort, no count read back)."""
    T = inputs.numel()
    pos = torch.arange(T, device=inputs.device, dtype=torch.int32)
    starts = torch.where((inputs == EOT) | (pos == 0), pos, T)
    first = torch.sort(starts).values[: max_docs(T)]
    return torch.cat([first, first.new_full((1,), T)])


def window_tokens(window_blocks: int, short: bool, block_size: int) -> int:
    """Keys a query may reach back (FlashAttention's window_size_left): w * block_size - 1."""
    w = short_window_blocks(window_blocks) if short else window_blocks
    return w * block_size - 1


def varlen_dense_mask(cu_seqlens: Tensor, left: int) -> Tensor:
    """(T, T) boolean mask of the same rule from the same bounds (the CPU twin and the GPU tests' reference)."""
    T = int(cu_seqlens[-1])
    pos = torch.arange(T, device=cu_seqlens.device)
    seq = torch.searchsorted(cu_seqlens[1:-1].contiguous(), pos, right=True)  # padding bounds equal T: never hit
    diff = pos[:, None] - pos[None, :]
    return (diff >= 0) & (diff <= left) & (seq[:, None] == seq[None, :])


def check_host_window(window_blocks: Tensor) -> None:
    """The window must live on the host: reading a device one would stop the GPU at every attention call."""
    if window_blocks.device.type != "cpu":
        raise ValueError(f"the fa4 attention window must be a CPU tensor (GPT.window gives one), got one on "
                         f"{window_blocks.device}")


@torch.library.custom_op("speedrun::fa4_varlen_fwd", mutates_args=())
def fa4_varlen_fwd(q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, window_blocks: Tensor, short: bool,
                   block_size: int, scale: float) -> tuple[Tensor, Tensor]:
    """q, k, v (T, H, D) bf16 -> (out (T, H, D), lse (H, T) float32)."""
    from flash_attn.cute.interface import _flash_attn_fwd

    check_host_window(window_blocks)
    left = window_tokens(int(window_blocks), short, block_size)
    q, k, v = (t.contiguous() for t in (q, k, v))  # the kernels want the head dim dense (no-ops when it is)
    out, lse, *_ = _flash_attn_fwd(q, k, v, cu_seqlens_q=cu_seqlens, cu_seqlens_k=cu_seqlens, softmax_scale=scale,
                                   causal=True, window_size_left=left, window_size_right=0, return_lse=True)
    return out, lse


@fa4_varlen_fwd.register_fake
def _(q, k, v, cu_seqlens, window_blocks, short, block_size, scale):
    check_host_window(window_blocks)  # at trace time, before a compiled graph ever runs
    return torch.empty_like(q), q.new_empty(q.size(1), q.size(0), dtype=torch.float32)


@torch.library.custom_op("speedrun::fa4_varlen_bwd", mutates_args=())
def fa4_varlen_bwd(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, cu_seqlens: Tensor,
                   window_blocks: Tensor, short: bool, block_size: int, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    from flash_attn.cute.interface import _flash_attn_bwd

    left = window_tokens(int(window_blocks), short, block_size)
    q, k, v, out, dout = (t.contiguous() for t in (q, k, v, out, dout))
    dq, dk, dv = _flash_attn_bwd(q, k, v, out, dout, lse, scale, True, window_size_left=left,
                                 window_size_right=0, cu_seqlens_q=cu_seqlens, cu_seqlens_k=cu_seqlens)[:3]
    return dq, dk, dv


@fa4_varlen_bwd.register_fake
def _(dout, q, k, v, out, lse, cu_seqlens, window_blocks, short, block_size, scale):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup(ctx, inputs, output):
    q, k, v, cu_seqlens, window_blocks, ctx.short, ctx.block_size, ctx.scale = inputs
    ctx.save_for_backward(q, k, v, output[0], output[1], cu_seqlens, window_blocks)


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, cu_seqlens, window_blocks = ctx.saved_tensors
    dq, dk, dv = fa4_varlen_bwd(dout, q, k, v, out, lse, cu_seqlens, window_blocks, ctx.short, ctx.block_size,
                                ctx.scale)
    return dq, dk, dv, None, None, None, None, None


fa4_varlen_fwd.register_autograd(_backward, setup_context=_setup)


class VarlenWindow:
    """Takes the place of the mask in `CausalSelfAttention.forward` with attention_kernel = "fa4": the row's
    document bounds, the long window in blocks (a CPU tensor) and which window this layer has."""

    def __init__(self, cu_seqlens: Tensor, window_blocks: Tensor, short: bool, block_size: int):
        self.cu_seqlens, self.window_blocks, self.short, self.block_size = cu_seqlens, window_blocks, short, block_size

    def attend(self, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        """q, k, v (1, T, H, D) -> (1, T, H, D)."""
        out, _ = fa4_varlen_fwd(q[0], k[0], v[0], self.cu_seqlens, self.window_blocks, self.short,
                                self.block_size, scale)
        return out[None]
