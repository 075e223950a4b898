"""Pieces the tiled-matmul Triton kernels share (linear_relu2, symmetric_matmul): the K loop of one output tile,
the interpreter's bf16 stand-ins, and the launch flags that choose them.

Triton inlines these jit functions into each kernel, so sharing them costs nothing at run time."""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the kernels' references still work
    triton = None

# Kernels run on CPU tensors under Triton's interpreter (read by Triton when a kernel is defined, so fixed here).
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def precision_flags(dtype: torch.dtype) -> dict:
    """The PRECISION and INTERPRETER_BF16 launch flags for inputs of `dtype`. Float32 stays float32 (no TF32): the
    kernel then gives what torch's float32 matmul does. In the interpreter, bf16 runs as exact float32 products."""
    emulate = INTERPRETED and dtype == torch.bfloat16
    return dict(PRECISION="ieee" if dtype == torch.float32 or emulate else None, INTERPRETER_BF16=emulate)


if triton is not None:

    @triton.jit
    def tile_dot(a_ptrs, b_ptrs, m_in, n_in, rk, K, a_k_stride, b_k_stride,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 PRECISION: tl.constexpr, INTERPRETER_BF16: tl.constexpr):
        """float32 (BLOCK_M, BLOCK_N) sum over K of A-tile x B-tile: a_ptrs (BLOCK_M, BLOCK_K) and b_ptrs
        (BLOCK_K, BLOCK_N) at k = 0, stepped along K by a_k_stride / b_k_stride; rows and columns outside
        m_in / n_in and k past K read as 0."""
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, K, BLOCK_K):
            k_in = rk + k < K
            a = tl.load(a_ptrs, mask=m_in[:, None] & k_in[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=k_in[:, None] & n_in[None, :], other=0.0)
            if INTERPRETER_BF16:  # the interpreter's bf16 dot is wrong (Triton 3.9); bf16 products are exact in fp32
                a, b = a.to(tl.float32), b.to(tl.float32)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
            a_ptrs += BLOCK_K * a_k_stride
            b_ptrs += BLOCK_K * b_k_stride
        return acc

    @triton.jit
    def round_like_gpu_bf16(acc, INTERPRETER_BF16: tl.constexpr):
        """acc unchanged, except in the interpreter with bf16 output, which truncates float32 -> bf16: there round
        to nearest even first, as the GPU does."""
        if INTERPRETER_BF16:
            bits = acc.to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            acc = bits.to(tl.float32, bitcast=True)
        return acc
