"""Incremental decoding (generation, completion scoring): the KV cache and the window that attends against it, in
the place of `attention.FlexWindow` / `DenseWindow` when `GPT.forward_cached` runs the trunk."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speedrun.model.rotary import Rotary, rotary_frequencies, rotate


class KVCache:
    """Per layer, keys and values of the positions it may still see (`GPT.forward_cached`). Replaced, never written
    in place, so `copy()` is cheap and copies can branch off (completion scoring: one context, each ending a copy)."""

    def __init__(self):
        self.layers: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}  # id(attn) -> (k, v, positions, docs)
        self.length = 0  # positions fed so far
        self.doc = 0  # document id of the last position fed
        self.last_token: Tensor | None = None  # (1,) id of the last position fed (smear looks back)
        self.last_keys: dict[int, Tensor] = {}  # id(attn) -> its last key before the key offset (key_offset layers)

    def copy(self) -> "KVCache":
        out = KVCache()
        out.layers, out.length, out.doc, out.last_token = dict(self.layers), self.length, self.doc, self.last_token
        out.last_keys = dict(self.last_keys)
        return out


class CachedWindow:
    """The window a layer attends through when decoding against a KVCache (in the place of `attention.FlexWindow` /
    `DenseWindow`): rotary at absolute positions, attention to cached + new keys under the full pass's rule
    (speedrun/model/attention.py)."""

    def __init__(self, cache: KVCache, positions: Tensor, docs: Tensor, window_blocks: int, block_size: int,
                 rotary_base: float):
        self.cache, self.positions, self.docs = cache, positions, docs
        self.window, self.block, self.base = window_blocks, block_size, rotary_base

    def rotate(self, rotary: Rotary, x: Tensor) -> Tensor:
        """Rotary.forward at positions self.positions (x: (B, T, H, D)); the same arithmetic, so the same values."""
        table = rotary.cos.size(0)
        if int(self.positions[-1]) < table:
            cos, sin = rotary.cos[self.positions], rotary.sin[self.positions]
        else:  # past the table (long generations): the same angles, computed here
            freqs = rotary_frequencies(x.size(-1), self.base).to(x.device)
            theta = self.positions.to(torch.float32)[:, None] * freqs[None]
            cos, sin = theta.cos(), theta.sin()
        return rotate(x, cos, sin)

    def previous_key(self, layer: nn.Module, k: Tensor) -> Tensor:
        """The key (B, 1, H, D) of the position before this chunk, before its offset (zeros at the start), and this
        chunk's last one kept for the next (the key offset of `layer`)."""
        before = self.cache.last_keys.get(id(layer))
        self.cache.last_keys[id(layer)] = k[:, -1:]
        return before if before is not None else k.new_zeros(k.size(0), 1, *k.shape[2:])

    def attend(self, layer: nn.Module, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        """q, k, v (B, H, T, D) of the new positions; extends the layer's cache and drops keys no later query sees."""
        key = id(layer)
        pos, docs = self.positions, self.docs
        if key in self.cache.layers:
            k0, v0, p0, d0 = self.cache.layers[key]
            k, v, pos_all, docs_all = torch.cat([k0, k], 2), torch.cat([v0, v], 2), torch.cat([p0, pos]), torch.cat([d0, docs])
        else:
            pos_all, docs_all = pos, docs
        b = self.block
        mask = ((pos_all[None, :] <= pos[:, None]) & (docs_all[None, :] == docs[:, None])
                & (pos[:, None] // b - pos_all[None, :] // b < self.window))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        # Later queries sit at positions > pos[-1] in documents >= docs[-1]: older blocks and documents are out of reach.
        nxt = int(pos[-1]) + 1
        keep = (nxt // b - pos_all // b < self.window) & (docs_all == docs[-1])
        first = int((~keep).sum())  # keep is False then True (positions and documents only grow)
        self.cache.layers[key] = (k[:, :, first:], v[:, :, first:], pos_all[first:], docs_all[first:])
        return y
