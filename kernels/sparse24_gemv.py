"""2:4 decode for one row of x: a GEMV on the kept values, no dense tile (``M <= GEMV_MAX_M``).

Each kept value meets its x entry through an 8-byte load from a per-call table of x pairs
(:func:`x_pair_table`: for every group of four x entries, the 16 float32 pairs a 4-bit position nibble can
select, 128 bytes per group), so only the kept half of the products is computed, in float32, in registers.

**Lanes along K.** Two lanes share a weight row (``LANES_K``), each loading 16 bytes of values (four groups,
16 columns) per step, sixteen rows per warp: a warp-level values load touches 16 rows x 32 contiguous bytes, 4
cycles of the L1 data stage (and of the tag stage) for 512 bytes. With a whole row per lane (an earlier
version of this kernel) every 16-byte load of a warp touched 32 lines, 8 tag-stage cycles for the same bytes,
and the pair-table gathers on top put L1 at 41% of an H200's cycles at full bandwidth
(``bench/results/kernels/compiled-triton-*.md``, memory section). Both lanes of a row load the row's 16 bytes
of metadata per tile (one vector, the same address), each using its half of every word; the table gathers of
one warp-level load touch two groups' lines, under 128 bytes: one cycle. (Four lanes per row spread a gather
over four groups, more than 128 bytes: two cycles each, which costs more than the cheaper values loads save.)

Split-K as in :mod:`polysparse.kernels.sparse24_splitk`; each further row of x would be another pass over
the weight, so the op sends only M = 1 here.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from polysparse.kernels import sparse24_splitk as splitk
from polysparse.kernels.dispatch import interpreter_enabled, launcher
from polysparse.kernels.sparse24 import kernel_operands
from polysparse.kernels.sparse24_decode_mma import EVEN_TILES

LANES_K = 2
"""Lanes per weight row, side by side along K (16 columns each per step; the kernel spells it out)."""


def x_pair_table_reference(x2d: torch.Tensor) -> torch.Tensor:
    """``(M, K)`` -> ``(M, K / 4, 16)`` int64: entry ``[m, g, p0 | p1 << 2]`` holds the float32 pair
    ``(x[m, 4g + p0], x[m, 4g + p1])``, low word ``p0``'s. Invalid nibbles (``p0 >= p1``) hold pairs too."""
    m, k = x2d.shape
    xg = x2d.float().reshape(m, k // 4, 4)
    nib = torch.arange(16, device=x2d.device)
    pairs = torch.stack((xg[:, :, nib & 3], xg[:, :, nib >> 2]), dim=-1)  # (M, G, 16, 2) float32
    return pairs.contiguous().view(torch.int64).reshape(m, k // 4, 16)


@triton.jit
def _x_pair_table_kernel(x_ptr, t_ptr, G, stride_xm, stride_tm, BLOCK_G: tl.constexpr):
    """One row of :func:`x_pair_table_reference` per ``program_id(1)``, ``BLOCK_G`` groups per program."""
    offs_g = tl.program_id(0) * BLOCK_G + tl.arange(0, BLOCK_G)
    g_mask = offs_g < G
    x_row = x_ptr + tl.program_id(1).to(tl.int64) * stride_xm + offs_g * 4
    x0 = tl.load(x_row, mask=g_mask, other=0.0).to(tl.float32)[:, None]
    x1 = tl.load(x_row + 1, mask=g_mask, other=0.0).to(tl.float32)[:, None]
    x2 = tl.load(x_row + 2, mask=g_mask, other=0.0).to(tl.float32)[:, None]
    x3 = tl.load(x_row + 3, mask=g_mask, other=0.0).to(tl.float32)[:, None]
    nib = tl.arange(0, 16)[None, :]
    p0 = nib & 3
    p1 = nib >> 2
    first = tl.where(p0 == 0, x0, tl.where(p0 == 1, x1, tl.where(p0 == 2, x2, x3)))
    second = tl.where(p1 == 0, x0, tl.where(p1 == 1, x1, tl.where(p1 == 2, x2, x3)))
    low = first.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF
    high = second.to(tl.int32, bitcast=True).to(tl.int64) << 32
    t_ptrs = t_ptr + tl.program_id(1).to(tl.int64) * stride_tm + offs_g[:, None] * 16 + nib
    tl.store(t_ptrs, low | high, mask=g_mask[:, None])


@triton.jit
def _gemv_tile(
    acc,
    t_row,
    v_rows,
    e_rows,
    group,
    word,
    shift,
    kt,
    G,
    BLOCK_K: tl.constexpr,
    BF16: tl.constexpr,
    MASK_K: tl.constexpr,
):
    """``acc[r, n, l, q] += v0 * x[p0] + v1 * x[p1]`` for the pairs of K-tile ``kt`` (no row masks: rows
    past N read row N - 1, see the kernel)."""
    g = kt * (BLOCK_K // 4) + group  # the group of each pair (shapes: see the kernel)
    w = kt * (BLOCK_K // 32) + word  # the int32 metadata word of step r (both lanes')
    if MASK_K:
        pair = tl.load(v_rows + g, mask=g < G, other=0)
        words = tl.load(e_rows + w, mask=w * 8 < G, other=0)
    else:
        pair = tl.load(v_rows + g)
        words = tl.load(e_rows + w)
    nib = (words >> shift) & 0xF
    if MASK_K:  # noqa: SIM108 (other= needs a mask)
        t = tl.load(t_row + g * 16 + nib, mask=g < G, other=0)
    else:
        t = tl.load(t_row + g * 16 + nib)
    # The pair's float32 bits: x[p0] in the low word, x[p1] in the high word.
    x_first = (t & 0xFFFFFFFF).to(tl.int32).to(tl.float32, bitcast=True)
    x_second = (t >> 32).to(tl.int32).to(tl.float32, bitcast=True)
    if BF16:  # bf16 -> fp32 is a 16-bit shift of the bits
        v0 = (pair << 16).to(tl.float32, bitcast=True)
        v1 = (pair & -65536).to(tl.float32, bitcast=True)
    else:
        v0 = (pair & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
        v1 = (pair >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    acc = acc + v0 * x_first
    acc = acc + v1 * x_second
    return acc


@triton.jit
def _sparse24_gemv_kernel(
    t_ptr,  # (M, K/4, 16) int64: x's pair table (x_pair_table_reference)
    v_ptr,  # values as int32: one (v0, v1) pair per group
    meta_ptr,  # metadata as int32: eight groups per word
    bias_ptr,
    y_ptr,
    M,
    N,
    K,
    stride_tm,
    stride_vn,  # in int32 pairs
    stride_en16,  # row stride of the metadata in 16-byte units (format version 2 pads rows to 16 bytes)
    stride_ys,
    stride_ym,
    HAS_BIAS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BF16: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    EVEN_N: tl.constexpr,  # N % BLOCK_N == 0: no row masks
    EVEN_K: tl.constexpr,  # K % BLOCK_K == 0: no K tail
    LANES_INNER: tl.constexpr,  # the lane dimension next to the vector one (see LANES_INNER below)
):
    """Program (row tile, k-split, x row): ``y[m, rows] (+)= W[rows, k range] @ x[m, k range]``.

    Pair ``(r, n, l, q)`` of a tile is group ``4 (r LANES_K + l) + q`` of row ``n``: lane ``l`` of a row
    loads 16 contiguous bytes of values per ``r``, and the row's ``LANES_K`` lanes sit side by side.
    """
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)
    REPS: tl.constexpr = BLOCK_K // 32  # LANES_K (2) lanes x 16 columns per step
    G = K // 4
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    # Tiles are [REPS, BLOCK_N, 2, 4] or [2, BLOCK_N, REPS, 4] (LANES_INNER): see LANES_INNER below.
    if LANES_INNER:
        offs_r = tl.arange(0, REPS)[:, None, None, None]
        offs_l = tl.arange(0, 2)[None, None, :, None]
    else:
        offs_l = tl.arange(0, 2)[:, None, None, None]
        offs_r = tl.arange(0, REPS)[None, None, :, None]
    offs_q = tl.arange(0, 4)[None, None, None, :]
    group = (offs_r * 2 + offs_l) * 4 + offs_q  # the lane's 16-byte vector is groups 4 (2r + l) .. + 3
    # Step r's eight groups are int32 word r of the tile: lane l's nibbles in its half l. Both lanes of a
    # row load the row's 16 bytes of words once per tile (one vector: the words are contiguous along r).
    word = offs_r
    shift = offs_l * 16 + offs_q * 4
    # Rows past N read row N - 1 (their sums are never stored): the main loop needs no row masks.
    rows64 = (offs_n if EVEN_N else tl.minimum(offs_n, N - 1)).to(tl.int64)[None, :, None, None]
    v_rows = v_ptr + rows64 * stride_vn
    e_rows = meta_ptr + rows64 * (stride_en16 * 4)  # a multiple of 4 int32: 16-byte aligned rows
    t_row = t_ptr + pid_m.to(tl.int64) * stride_tm

    k_tiles = tl.cdiv(K, BLOCK_K)
    tiles_per_split = tl.cdiv(k_tiles, SPLIT_K)
    k_first = pid_k * tiles_per_split
    k_last = min(k_first + tiles_per_split, k_tiles)
    if LANES_INNER:
        acc = tl.zeros((REPS, BLOCK_N, 2, 4), dtype=tl.float32)
    else:
        acc = tl.zeros((2, BLOCK_N, REPS, 4), dtype=tl.float32)
    if EVEN_K:
        for kt in range(k_first, k_last):
            acc = _gemv_tile(acc, t_row, v_rows, e_rows, group, word, shift, kt, G, BLOCK_K, BF16, False)
    else:
        # Whole tiles unmasked; the last tile of the row, partly past K, masked on its own.
        for kt in range(k_first, min(k_last, k_tiles - 1)):
            acc = _gemv_tile(acc, t_row, v_rows, e_rows, group, word, shift, kt, G, BLOCK_K, BF16, False)
        if (k_first < k_tiles) & (k_last == k_tiles):  # this split holds the tail (empty splits do not)
            acc = _gemv_tile(acc, t_row, v_rows, e_rows, group, word, shift, k_tiles - 1, G, BLOCK_K, BF16,
                             True)  # fmt: skip
    out = tl.sum(tl.sum(tl.sum(acc, axis=3), axis=2), axis=0)
    y_ptrs = y_ptr + pid_k * stride_ys + pid_m.to(tl.int64) * stride_ym + offs_n
    if SPLIT_K == 1:
        if HAS_BIAS:
            out += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        tl.store(y_ptrs, out.to(y_ptr.dtype.element_ty), mask=n_mask)
    else:
        tl.store(y_ptrs, out, mask=n_mask)


# The program's rows are a multiple of a warp's sixteen (32 lanes / LANES_K).
# No 64-row tiles: every program reads its K range of the x pair table (96 of 128 bytes per group), and over
# 64 rows that is 1.33 bytes from L2 per byte of weight against the 1.3 budget (the memory model of
# bench/kernels/memory_model.py, bench/results/kernels/compiled-triton-*.md); 128 rows: 1.17, 256: 1.08.
# Split-K fills the GPU instead.
GEMV_CONFIGS = [
    triton.Config({"BLOCK_N": 128, "BLOCK_K": 128}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_N": 256, "BLOCK_K": 128}, num_warps=8, num_stages=1),
]
_GEMV_INTERPRETER = [triton.Config({"BLOCK_N": 32, "BLOCK_K": 128}, num_warps=1, num_stages=1)]

LANES_INNER = tuple(int(v) for v in triton.__version__.split(".")[:2]) >= (3, 9)
"""How the tiles' dimensions are ordered so that Triton puts two lanes per row. Its coalescing pass gives the
16-byte vector dimension to one thread and then spreads lanes over the other dimensions in an order it
breaks ties in by index: ascending in triton 3.6, descending in 3.9 (the TTGIR of both,
``bench/results/kernels/compiled-triton-*.md``). With the lane dimension last before the vector (3.9) or
first (3.6) the lanes go to it, then to rows; the other order put the steps on lanes (three of four lanes
on other groups: 2 L1 cycles per table gather, 40% of an H200 with triton 3.6)."""

_sparse24_gemv_kernel_h = triton.heuristics(dict(EVEN_TILES, LANES_INNER=lambda args: LANES_INNER))(
    _sparse24_gemv_kernel
)
_sparse24_gemv = triton.autotune(
    configs=_GEMV_INTERPRETER if interpreter_enabled() else GEMV_CONFIGS,
    key=["N", "K", "SPLIT_K"],
)(_sparse24_gemv_kernel_h)

JIT_KERNELS = {"gemv": _sparse24_gemv_kernel, "x_pair_table": _x_pair_table_kernel}
"""This module's ``@triton.jit`` kernels by role (configurations: :data:`GEMV_CONFIGS`)."""


def tuned_config() -> triton.Config | None:
    """The configuration the GEMV's autotuner chose at its last tuning (None before)."""
    return getattr(_sparse24_gemv, "best_config", None)


def gemv_split_k(m: int, n: int, k: int, device: torch.device) -> int:
    """K-splits for the GEMV: about two programs per SM, each split keeping >= 512 columns."""
    return splitk.split_for_programs(triton.cdiv(n, 128) * m, k, device)


def x_pair_table(x2d: torch.Tensor) -> torch.Tensor:
    """:func:`x_pair_table_reference` with the Triton kernel (one launch)."""
    m, k = x2d.shape
    if x2d.stride(1) != 1:
        x2d = x2d.contiguous()
    table = torch.empty(m, k // 4, 16, dtype=torch.int64, device=x2d.device)
    block_g = 64
    _x_pair_table_kernel[(triton.cdiv(k // 4, block_g), m)](
        x2d, table, k // 4, x2d.stride(0), table.stride(0), BLOCK_G=block_g, num_warps=4
    )
    return table


def sparse24_gemv_triton(
    x2d: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    *,
    split_k: int | None = None,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """The decode path into a preallocated ``out`` ``(M, N)``: pair table, GEMV, split-K reduction."""
    m, k = x2d.shape
    n = values.shape[0]
    if m == 0:
        return out
    if split_k is None:
        split_k = gemv_split_k(m, n, k, x2d.device)
    table = x_pair_table(x2d)
    values, pairs, words = kernel_operands(values, meta)
    target = splitk.split_k_target(out, split_k)
    has_bias = bias is not None

    def grid(meta_args):
        return triton.cdiv(n, meta_args["BLOCK_N"]), split_k, m

    kernel, extra = launcher(_sparse24_gemv, _sparse24_gemv_kernel_h, config)
    kernel[grid](
        table,
        pairs,
        words,
        bias if has_bias else values,
        target,
        m,
        n,
        k,
        table.stride(0),
        pairs.stride(0),
        words.stride(0) // 4,
        target.stride(0) if split_k > 1 else 0,
        target.stride(-2),
        HAS_BIAS=has_bias,
        SPLIT_K=split_k,
        BF16=x2d.dtype == torch.bfloat16,
        **extra,
    )
    return splitk.finish_split_k(target, bias, out)
