"""Half-truncated rotary embedding: head_dim/4 frequencies, then head_dim/4 zero frequencies (not rotated)."""

import torch
from torch import Tensor, nn


def rotary_frequencies(head_dim: int, base: float) -> Tensor:
    quarter = head_dim // 4
    freqs = (1.0 / base) ** torch.linspace(0, 1, steps=quarter, dtype=torch.float32)
    return torch.cat([freqs, freqs.new_zeros(quarter)])


class Rotary(nn.Module):
    """Rotates (first half, second half) pairs of head_dim, in float32, by position x frequency."""

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 1024.0):
        super().__init__()
        theta = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), rotary_frequencies(head_dim, base))
        self.cos = nn.Buffer(theta.cos(), persistent=False)
        self.sin = nn.Buffer(theta.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, H, D)."""
        T = x.size(-3)
        if T > self.cos.size(0):
            raise ValueError(f"sequence of {T} tokens is longer than the rotary table ({self.cos.size(0)})")
        return rotate(x, self.cos[:T], self.sin[:T])


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, T, H, D) rotated by the (T, D/2) angles' cos and sin, in float32, back in x's dtype."""
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1).type_as(x)
