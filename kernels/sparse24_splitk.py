"""Split-K for the 2:4 matmul kernels: how many K splits fill the GPU, where the partial sums go, and the
kernel that adds them in a fixed order (so results are deterministic), adds the bias and casts.

When an output has too few tiles to occupy every SM, the K range is split over ``SPLIT_K`` programs that
write float32 partial sums ``(SPLIT_K, M, N)``; :func:`finish_split_k` reduces them into the output.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@triton.jit
def _splitk_reduce_kernel(
    ws_ptr,
    bias_ptr,
    y_ptr,
    M,
    N,
    stride_ws,
    stride_wm,
    stride_wn,
    stride_ym,
    stride_yn,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """``y = sum_s ws[s] (+ bias)`` in a fixed order, cast to y's dtype."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    ws_ptrs = ws_ptr + offs_m.to(tl.int64)[:, None] * stride_wm + offs_n[None, :] * stride_wn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        acc += tl.load(ws_ptrs + s * stride_ws, mask=mask, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + offs_n[None, :] * stride_yn
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)


JIT_KERNELS = {"splitk_reduce": _splitk_reduce_kernel}
"""This module's ``@triton.jit`` kernel (what ``bench/kernels/compiled.py`` compiles)."""


@functools.cache
def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (1 for the interpreter: no parallelism to fill)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def split_for_programs(tiles: int, k: int, device: torch.device) -> int:
    """K-splits giving about two programs per SM over ``tiles`` output tiles, each split keeping >= 512
    columns (the GEMV and the tensor-core decode kernel)."""
    split = 1
    while split < 16 and 2 * split * tiles <= 2 * num_sms(device) and k // (2 * split) >= 512:
        split *= 2
    return split


def reduce_splits(partials: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> None:
    """``out = sum_s partials[s] (+ bias)``, one launch."""
    m, n = out.shape
    block_m, block_n = 16, 128
    _splitk_reduce_kernel[(triton.cdiv(m, block_m), triton.cdiv(n, block_n))](
        partials,
        bias if bias is not None else partials,
        out,
        m,
        n,
        partials.stride(0),
        partials.stride(1),
        partials.stride(2),
        out.stride(0),
        out.stride(1),
        HAS_BIAS=bias is not None,
        SPLIT_K=partials.shape[0],
        BLOCK_M=block_m,
        BLOCK_N=block_n,
    )


def split_k_target(out: torch.Tensor, split_k: int) -> torch.Tensor:
    """Where a kernel writes: ``out`` itself, or ``(split_k, M, N)`` fp32 partial sums for
    :func:`finish_split_k` to reduce into it."""
    if split_k == 1:
        return out
    m, n = out.shape
    return torch.empty(split_k, m, n, dtype=torch.float32, device=out.device)


def finish_split_k(target: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """``out``, with the partial sums of a split-K launch (and the bias) reduced into it."""
    if target is not out:
        reduce_splits(target, bias, out)
    return out
