"""The 2:4 sparse format: compress, decompress and prune-and-compress (reference, Triton kernels, wrappers).

A 2:4 weight ``W`` (``R = out_features`` rows, ``K = in_features`` columns, ``K`` a multiple of 4) has at most
two nonzeros in every group of four consecutive columns of a row. Group ``g`` of row ``r`` covers columns
``4g .. 4g+3``; there are ``G = K / 4`` groups per row. The format keeps, for every group, two *positions*
``p0 < p1`` (each in 0..3) and the two weights found there:

* ``values``: ``(R, K / 2)``, the weight's dtype. ``values[r, 2g] = W[r, 4g + p0]`` and
  ``values[r, 2g + 1] = W[r, 4g + p1]``: the kept weights of each group, in column order.
* ``meta``: ``(R, ceil(G / 4))``, ``torch.int16``. Each group's positions form a 4-bit nibble
  ``p0 | (p1 << 2)``; word ``meta[r, w]`` holds groups ``4w .. 4w+3`` of row ``r``, group ``4w + q`` in bits
  ``4q .. 4q+3`` (group ``4w`` in the lowest nibble). Nibbles past the last group of a row (when ``G`` is not
  a multiple of 4) are zero. The words are plain bit containers: read them as unsigned 16-bit
  (``meta.int() & 0xFFFF``) before shifting. Every function takes any strides; :func:`aligned_meta` gives a
  view with the row stride padded to 8 words (16 bytes: format version 2, :data:`META_ROW_ALIGN`),
  which the matmul kernels load as whole 16-byte vectors.

Cost: 4 bits of metadata per group of 4 weights, i.e. 1/8 byte per dense weight; with fp16/bf16 values a
weight costs 1 + 1/8 = 1.125 bytes against 2 dense, hence the 2 / 1.125 = 1.78x bound on a memory-bound
matmul. The nibble encoding and the packing of four groups into one 16-bit word, lowest group in the lowest
nibble, are exactly CUTLASS's (and so PyTorch's ``SparseSemiStructuredTensorCUTLASS``) metadata before its
tile reordering, which makes that conversion a permutation of words. In the matmul a tile of ``BLOCK_K``
dense columns needs ``BLOCK_K / 2`` contiguous values and ``BLOCK_K / 16`` contiguous words per row.

Which positions are kept:

* :func:`compress_24` keeps the nonzeros of each group; a group with fewer than two nonzeros is completed
  with its lowest-indexed zero positions (``[0, 0, 0, 0]`` -> positions ``(0, 1)``, ``[0, 0, x, 0]`` ->
  ``(0, 2)``), whose zeros are stored as values. A group with three or four nonzeros is an error naming the
  first such group (row-major order). ``NaN`` counts as nonzero; ``-0.0`` as zero (a ``-0.0`` that is not
  kept comes back as ``+0.0``).
* :func:`prune_and_compress_24` scores ``|W| * scale`` in float32 and keeps the two highest of every four,
  exactly the keep-mask of :func:`polysparse.kernels.topk_mask.nm_mask` with ``n=2, m=4`` (the two lowest
  pruned, ties like a stable ascending sort, so of equal scores the higher column is kept; NaN sorts last).
  Its positions are those of the mask even where a kept weight is zero, so
  ``decompress_24(*prune_and_compress_24(W, s)) == W * nm_mask(W, s, n=2, m=4)``.

Conversions to PyTorch's and compressed-tensors' layouts live in :mod:`polysparse.kernels.sparse24_convert`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from polysparse.kernels.dispatch import Impl, choose_impl
from polysparse.kernels.topk_mask import nm_mask_reference

GROUPS_PER_WORD = 4
"""Groups of four columns whose positions share one int16 metadata word (16 dense columns)."""

_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_NO_BAD_GROUP = 2**62
_NO_BAD_GROUP_C: tl.constexpr = tl.constexpr(_NO_BAD_GROUP)  # the same sentinel, readable inside kernels

# ----------------------------------------------------------------------------------------------------------
# Shapes, errors and nibble packing (shared by the reference and the wrappers)
# ----------------------------------------------------------------------------------------------------------


def meta_shape(out_features: int, in_features: int) -> tuple[int, int]:
    """Shape of the int16 metadata of an ``out_features x in_features`` 2:4 weight."""
    groups = in_features // 4
    return out_features, -(-groups // GROUPS_PER_WORD)


def _check_weight(weight: torch.Tensor) -> None:
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight (out x in), got shape {tuple(weight.shape)}")
    if weight.shape[1] % 4:
        raise ValueError(
            f"in_features={weight.shape[1]} is not a multiple of 4: a 2:4 layer needs whole groups of four "
            "columns (keep this layer dense)"
        )


def check_compressed(values: torch.Tensor, meta: torch.Tensor) -> tuple[int, int]:
    """Validate shapes and dtypes of a ``(values, meta)`` pair; return the dense ``(R, K)``."""
    if values.dim() != 2 or meta.dim() != 2:
        raise ValueError(f"values and meta must be 2-D, got {tuple(values.shape)} and {tuple(meta.shape)}")
    if meta.dtype != torch.int16:
        raise ValueError(f"meta must be torch.int16, got {meta.dtype}")
    rows, half = values.shape
    if half % 2:
        raise ValueError(f"values has {half} columns; a 2:4 weight stores an even number (in_features / 2)")
    cols = 2 * half
    if tuple(meta.shape) != meta_shape(rows, cols):
        raise ValueError(
            f"meta has shape {tuple(meta.shape)}, expected {meta_shape(rows, cols)} for values of shape "
            f"{tuple(values.shape)} (dense {rows} x {cols})"
        )
    if values.device != meta.device:
        raise ValueError(f"values on {values.device} but meta on {meta.device}")
    return rows, cols


def _bad_group_error(weight: torch.Tensor, row: int, group: int) -> ValueError:
    cols = slice(4 * group, 4 * group + 4)
    count = int((weight[row, cols] != 0).sum())
    return ValueError(
        f"weight is not 2:4 sparse: row {row}, columns {4 * group}..{4 * group + 3} hold {count} nonzeros "
        f"(at most 2 of every 4 consecutive weights may be nonzero): {weight[row, cols].tolist()}"
    )


def pack_nibbles(nibbles: torch.Tensor) -> torch.Tensor:
    """``(R, G)`` nibbles -> ``(R, ceil(G / 4))`` int16 words, group ``4w + q`` in bits ``4q..4q+3``."""
    rows, groups = nibbles.shape
    words = -(-groups // GROUPS_PER_WORD)
    padded = torch.zeros(rows, words * GROUPS_PER_WORD, dtype=torch.int32, device=nibbles.device)
    padded[:, :groups] = nibbles.to(torch.int32)
    shifts = 4 * torch.arange(GROUPS_PER_WORD, dtype=torch.int32, device=nibbles.device)
    packed = (padded.reshape(rows, words, GROUPS_PER_WORD) << shifts).sum(-1, dtype=torch.int32)
    # int16 holds the 16 bits as two's complement; converting an out-of-range int is not defined, so wrap.
    return torch.where(packed >= 2**15, packed - 2**16, packed).to(torch.int16)


def unpack_nibbles(meta: torch.Tensor, groups: int) -> torch.Tensor:
    """Inverse of :func:`pack_nibbles`: ``(R, W)`` int16 -> ``(R, groups)`` int64 nibbles."""
    rows, words = meta.shape
    shifts = 4 * torch.arange(GROUPS_PER_WORD, dtype=torch.int64, device=meta.device)
    unsigned = meta.to(torch.int64) & 0xFFFF
    nibbles = (unsigned.unsqueeze(-1) >> shifts) & 0xF
    return nibbles.reshape(rows, words * GROUPS_PER_WORD)[:, :groups]


def positions_from_keep(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, K)`` keep-mask with exactly two True per group -> positions ``p0 < p1`` as ``(R, G)`` int64."""
    rows, cols = keep.shape
    k4 = keep.reshape(rows, cols // 4, 4)
    idx = torch.arange(4, device=keep.device)
    p0 = torch.where(k4, idx, 4).amin(-1)
    p1 = torch.where(k4, idx, -1).amax(-1)
    return p0, p1


def keep_from_meta(meta: torch.Tensor, in_features: int) -> torch.Tensor:
    """Dense ``(R, in_features)`` boolean mask of the positions stored in ``meta``."""
    nib = unpack_nibbles(meta, in_features // 4)
    idx = torch.arange(4, device=meta.device)
    keep = (idx == (nib & 3).unsqueeze(-1)) | (idx == (nib >> 2).unsqueeze(-1))
    return keep.reshape(meta.shape[0], in_features)


META_ROW_ALIGN = 8
"""Format version 2: every row of metadata starts on a 16-byte boundary (a multiple of 8 int16 words) and its
storage runs to the next one, zero-padded, whatever ``K`` is; the kernels then load whole 16-byte vectors."""


def aligned_meta(meta: torch.Tensor, multiple: int = META_ROW_ALIGN) -> torch.Tensor:
    """The same words as a view whose row stride is a multiple of ``multiple`` words (zero-padded storage).

    Triton vectorises (and pipelines) the matmul's metadata loads only when it can prove each row starts on
    a 16-byte boundary; ``K / 16`` words is not a multiple of 8 for e.g. ``K = 960``. Call once per layer,
    not per matmul. The result equals ``meta``; ``.contiguous()`` drops the padding again, and
    :func:`padded_meta_storage` gives the padded rows themselves (what a version-2 checkpoint stores).
    """
    rows, words = meta.shape
    padded = -(-words // multiple) * multiple
    if is_aligned_meta(meta, multiple):
        return meta
    storage = torch.zeros(rows, padded, dtype=meta.dtype, device=meta.device)
    storage[:, :words] = meta
    return storage[:, :words]


def is_aligned_meta(meta: torch.Tensor, multiple: int = META_ROW_ALIGN) -> bool:
    """True when every row starts on a ``multiple``-word boundary and the storage holds each row's padding
    up to the next boundary (so a kernel may read whole 16-byte units of the last row too)."""
    rows, words = meta.shape
    if rows == 0:
        return True
    stride = meta.stride(0) if rows > 1 else max(meta.stride(0), -(-words // multiple) * multiple)
    if meta.stride(1) != 1 or stride % multiple or meta.storage_offset() % multiple or stride < words:
        return False
    end = meta.storage_offset() + (rows - 1) * stride + -(-words // multiple) * multiple
    return meta.untyped_storage().nbytes() >= end * meta.element_size()


def padded_meta_storage(meta: torch.Tensor, multiple: int = META_ROW_ALIGN) -> torch.Tensor:
    """``(R, ceil(W / multiple) * multiple)`` contiguous words: ``meta`` with zero padding per row."""
    rows, words = meta.shape
    padded = -(-words // multiple) * multiple
    out = torch.zeros(rows, padded, dtype=meta.dtype, device=meta.device)
    out[:, :words] = meta
    return out


def kernel_operands(
    values: torch.Tensor, meta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compressed weight as the 2:4 matmul kernels read it: ``(values, pairs, words)``.

    ``values`` is realigned by a copy when its rows are not contiguous 16-byte multiples; ``pairs`` views it
    as ``(N, K/4)`` int32 (v0, v1) pairs (``K % 64 == 0`` keeps 16-byte aligned rows); ``words`` is the
    metadata as int32 words (eight groups each) with 16-byte aligned rows (:func:`aligned_meta`, a copy
    only when the rows are not aligned already). Each shares storage with its input where no copy was needed.
    """
    if values.stride(1) != 1 or values.stride(0) % 8 or values.storage_offset() % 8:
        # clone, not .contiguous(): a contiguous view that starts mid-vector would come back unchanged
        values = values.clone(memory_format=torch.contiguous_format)
    return values, values.view(torch.int32), aligned_meta(meta).view(torch.int32)


def check_meta(meta: torch.Tensor, in_features: int) -> None:
    """Raise ``ValueError`` naming the first group whose positions are not ``p0 < p1`` (corrupt metadata)."""
    if tuple(meta.shape[1:]) != meta_shape(0, in_features)[1:]:
        raise ValueError(f"meta of shape {tuple(meta.shape)} does not fit in_features={in_features}")
    nib = unpack_nibbles(meta, in_features // 4)
    bad = (nib & 3) >= (nib >> 2)
    if bad.any():
        row, group = (int(i) for i in divmod(int(bad.flatten().nonzero()[0]), nib.shape[1]))
        value = int(nib[row, group])
        raise ValueError(
            f"corrupt 2:4 metadata: row {row}, columns {4 * group}..{4 * group + 3} have positions "
            f"({value & 3}, {value >> 2}); expected two distinct positions in increasing order"
        )
    words = meta_shape(0, in_features)[1]
    tail = in_features // 4 - (words - 1) * GROUPS_PER_WORD
    if (
        tail < GROUPS_PER_WORD
        and meta.numel()
        and bool(((meta[:, -1].to(torch.int64) & 0xFFFF) >> (4 * tail)).any())
    ):
        raise ValueError("corrupt 2:4 metadata: nibbles past the last group of a row are not zero")


# ----------------------------------------------------------------------------------------------------------
# PyTorch reference
# ----------------------------------------------------------------------------------------------------------


def _compress_positions(weight: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor):
    rows, cols = weight.shape
    w4 = weight.reshape(rows, cols // 4, 4)
    values = torch.stack((w4.gather(-1, p0.unsqueeze(-1)), w4.gather(-1, p1.unsqueeze(-1))), dim=-1)
    return values.reshape(rows, cols // 2), pack_nibbles(p0 | (p1 << 2))


def compress_24_reference(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, meta)`` of a 2:4 weight (see the module docstring for which positions are kept)."""
    _check_weight(weight)
    weight = weight.detach()
    rows, cols = weight.shape
    nz = weight.reshape(rows, cols // 4, 4) != 0
    count = nz.sum(-1)
    bad = count > 2
    if bad.any():
        row, group = divmod(int(bad.flatten().nonzero()[0]), cols // 4)
        raise _bad_group_error(weight, row, group)
    # complete each group with its lowest-indexed zeros: the i-th zero (1-based) is kept if i <= 2 - count
    zero_rank = torch.cumsum(~nz, dim=-1)
    keep = nz | (~nz & (zero_rank <= (2 - count).unsqueeze(-1)))
    p0, p1 = positions_from_keep(keep.reshape(rows, cols))
    return _compress_positions(weight, p0, p1)


def decompress_24_reference(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """Dense ``(R, K)`` weight: ``values`` scattered to their positions, zeros elsewhere."""
    rows, cols = check_compressed(values, meta)
    nib = unpack_nibbles(meta, cols // 4)
    v = values.reshape(rows, cols // 4, 2)
    idx = torch.arange(4, device=values.device)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    dense = torch.where(
        idx == (nib & 3).unsqueeze(-1),
        v[..., :1],
        torch.where(idx == (nib >> 2).unsqueeze(-1), v[..., 1:], zero),
    )
    return dense.reshape(rows, cols)


def prune_and_compress_24_reference(
    weight: torch.Tensor, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the two highest of every four ``|W| * scale`` (``nm_mask(n=2, m=4)``) and compress."""
    _check_weight(weight)
    keep = nm_mask_reference(weight, scale, 2, 4)
    p0, p1 = positions_from_keep(keep)
    return _compress_positions(weight.detach(), p0, p1)


# ----------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------


@triton.jit
def _less(a, b):
    # The order of torch.sort: NaN above everything, NaNs equal to each other.
    return (a < b) | ((b != b) & (a == a))


@triton.jit
def _same(a, b):
    return (a == b) | ((a != a) & (b != b))


@triton.jit
def _kept(s_j, s_a, s_b, s_c, J: tl.constexpr):
    # Stable ascending rank of score j among the four (a, b, c are the other three in column order, J is
    # j's index): rank = #{i : s_i < s_j, or s_i == s_j and i < j}. The two of rank >= 2 are kept.
    rank = _less(s_a, s_j).to(tl.int32) + _less(s_b, s_j).to(tl.int32) + _less(s_c, s_j).to(tl.int32)
    if J >= 1:
        rank += _same(s_a, s_j).to(tl.int32)
    if J >= 2:
        rank += _same(s_b, s_j).to(tl.int32)
    if J >= 3:
        rank += _same(s_c, s_j).to(tl.int32)
    return rank >= 2


@triton.jit
def _compress24_kernel(
    w_ptr,
    scale_ptr,
    v_ptr,
    meta_ptr,
    bad_ptr,
    R,
    G,
    stride_wr,
    stride_wc,
    stride_vr,
    stride_vc,
    stride_er,
    stride_ec,
    PRUNE: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """One program: ``BLOCK_R`` rows x ``BLOCK_W`` metadata words (``4 * BLOCK_W`` groups of four columns).

    Tiles are 3-D ``[row, word, group-in-word]``; the four columns of each group are four loads with stride
    4, which touch the same cache lines (a format conversion, not the hot path).
    """
    pid_r = tl.program_id(0)
    pid_w = tl.program_id(1)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_w = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    offs_q = tl.arange(0, 4)
    groups = offs_w[None, :, None] * 4 + offs_q[None, None, :]  # [1, BLOCK_W, 4]
    row_ok = (offs_r < R)[:, None, None]
    mask = row_ok & (groups < G)
    rows64 = offs_r.to(tl.int64)[:, None, None]
    cols = groups.to(tl.int64) * 4

    w_row = w_ptr + rows64 * stride_wr
    w0 = tl.load(w_row + (cols + 0) * stride_wc, mask=mask, other=0.0)
    w1 = tl.load(w_row + (cols + 1) * stride_wc, mask=mask, other=0.0)
    w2 = tl.load(w_row + (cols + 2) * stride_wc, mask=mask, other=0.0)
    w3 = tl.load(w_row + (cols + 3) * stride_wc, mask=mask, other=0.0)

    if PRUNE:
        # Scores exactly as the reference computes them: |W| in float32 times the float32 scale.
        s0 = tl.abs(w0.to(tl.float32))
        s1 = tl.abs(w1.to(tl.float32))
        s2 = tl.abs(w2.to(tl.float32))
        s3 = tl.abs(w3.to(tl.float32))
        if HAS_SCALE:
            gmask = groups < G
            s0 = s0 * tl.load(scale_ptr + cols + 0, mask=gmask, other=1.0)
            s1 = s1 * tl.load(scale_ptr + cols + 1, mask=gmask, other=1.0)
            s2 = s2 * tl.load(scale_ptr + cols + 2, mask=gmask, other=1.0)
            s3 = s3 * tl.load(scale_ptr + cols + 3, mask=gmask, other=1.0)
        k0 = _kept(s0, s1, s2, s3, 0)
        k1 = _kept(s1, s0, s2, s3, 1)
        k2 = _kept(s2, s0, s1, s3, 2)
        k3 = _kept(s3, s0, s1, s2, 3)
    else:
        # Compared in fp32 so that -0.0 is zero for every dtype (Triton's interpreter compares bf16 bits).
        nz0 = w0.to(tl.float32) != 0
        nz1 = w1.to(tl.float32) != 0
        nz2 = w2.to(tl.float32) != 0
        nz3 = w3.to(tl.float32) != 0
        count = nz0.to(tl.int32) + nz1.to(tl.int32) + nz2.to(tl.int32) + nz3.to(tl.int32)
        # Complete with the lowest-indexed zeros: zero number i (1-based) is kept while i <= 2 - count.
        room = 2 - count
        z0 = (~nz0).to(tl.int32)
        z1 = z0 + (~nz1).to(tl.int32)
        z2 = z1 + (~nz2).to(tl.int32)
        z3 = z2 + (~nz3).to(tl.int32)
        k0 = nz0 | (z0 <= room)
        k1 = nz1 | ((~nz1) & (z1 <= room))
        k2 = nz2 | ((~nz2) & (z2 <= room))
        k3 = nz3 | ((~nz3) & (z3 <= room))
        # First bad group in row-major order: the smallest flat index row * G + group, over all programs.
        bad = mask & (count > 2)
        flat = tl.where(bad, rows64 * G + groups, _NO_BAD_GROUP_C)
        tl.atomic_min(bad_ptr, tl.min(tl.min(tl.min(flat, axis=2), axis=1), axis=0))

    # Exactly two kept: the first is at 0, 1 or 2, the last at 3, 2 or 1.
    p0 = tl.where(k0, 0, tl.where(k1, 1, 2))
    p1 = tl.where(k3, 3, tl.where(k2, 2, 1))
    v0 = tl.where(p0 == 0, w0, tl.where(p0 == 1, w1, w2))
    v1 = tl.where(p1 == 3, w3, tl.where(p1 == 2, w2, w1))

    v_row = v_ptr + rows64 * stride_vr
    tl.store(v_row + (groups.to(tl.int64) * 2 + 0) * stride_vc, v0, mask=mask)
    tl.store(v_row + (groups.to(tl.int64) * 2 + 1) * stride_vc, v1, mask=mask)

    nib = tl.where(mask, p0 | (p1 << 2), 0)
    word = tl.sum(nib << (offs_q[None, None, :] * 4), axis=2)  # [BLOCK_R, BLOCK_W], 16 significant bits
    wmask = (offs_r < R)[:, None] & (offs_w[None, :] * 4 < G)
    e_ptrs = meta_ptr + offs_r.to(tl.int64)[:, None] * stride_er + offs_w[None, :] * stride_ec
    tl.store(e_ptrs, word.to(tl.int16), mask=wmask)


@triton.jit
def _decompress24_kernel(
    v_ptr,
    meta_ptr,
    w_ptr,
    R,
    G,
    stride_vr,
    stride_vc,
    stride_er,
    stride_ec,
    stride_wr,
    stride_wc,
    BLOCK_R: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """One program: ``BLOCK_R`` rows x ``BLOCK_W`` metadata words; writes every dense column it covers."""
    pid_r = tl.program_id(0)
    pid_w = tl.program_id(1)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_w = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    offs_q = tl.arange(0, 4)
    groups = offs_w[None, :, None] * 4 + offs_q[None, None, :]
    mask = (offs_r < R)[:, None, None] & (groups < G)
    rows64 = offs_r.to(tl.int64)[:, None, None]

    e_ptrs = meta_ptr + offs_r.to(tl.int64)[:, None] * stride_er + offs_w[None, :] * stride_ec
    wmask = (offs_r < R)[:, None] & (offs_w[None, :] * 4 < G)
    word = tl.load(e_ptrs, mask=wmask, other=0).to(tl.int32)[:, :, None]
    nib = (word >> (offs_q[None, None, :] * 4)) & 0xF
    p0 = nib & 3
    p1 = nib >> 2

    v_row = v_ptr + rows64 * stride_vr
    v0 = tl.load(v_row + (groups.to(tl.int64) * 2 + 0) * stride_vc, mask=mask, other=0.0)
    v1 = tl.load(v_row + (groups.to(tl.int64) * 2 + 1) * stride_vc, mask=mask, other=0.0)
    zero = tl.zeros_like(v0)

    w_row = w_ptr + rows64 * stride_wr
    cols = groups.to(tl.int64) * 4
    for j in tl.static_range(4):
        d = tl.where(p0 == j, v0, tl.where(p1 == j, v1, zero))
        tl.store(w_row + (cols + j) * stride_wc, d, mask=mask)


JIT_KERNELS = {"compress24": _compress24_kernel, "decompress24": _decompress24_kernel}
"""This module's ``@triton.jit`` kernels by role (what ``bench/kernels/compiled.py`` compiles)."""


# ----------------------------------------------------------------------------------------------------------
# Host wrappers
# ----------------------------------------------------------------------------------------------------------

_BLOCK_R = 32
_BLOCK_W = 16


def _grid(rows: int, words: int) -> tuple[int, int]:
    return triton.cdiv(rows, _BLOCK_R), triton.cdiv(words, _BLOCK_W)


def _compress_24_triton(
    weight: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    scale: torch.Tensor | None = None,
    *,
    prune: bool,
) -> int | None:
    """Launch the compress kernel into preallocated ``values``/``meta``; return the first bad flat group."""
    rows, cols = weight.shape
    groups = cols // 4
    if rows == 0 or groups == 0:
        return None
    bad = torch.full((1,), _NO_BAD_GROUP, dtype=torch.int64, device=weight.device)
    scale_arg = scale if scale is not None else weight  # unused pointer when HAS_SCALE is False
    _compress24_kernel[_grid(rows, meta.shape[1])](
        weight,
        scale_arg,
        values,
        meta,
        bad,
        rows,
        groups,
        weight.stride(0),
        weight.stride(1),
        values.stride(0),
        values.stride(1),
        meta.stride(0),
        meta.stride(1),
        PRUNE=prune,
        HAS_SCALE=scale is not None,
        BLOCK_R=_BLOCK_R,
        BLOCK_W=_BLOCK_W,
    )
    if prune:
        return None
    first = int(bad.item())
    return None if first == _NO_BAD_GROUP else first


def _decompress_24_triton(values: torch.Tensor, meta: torch.Tensor, out: torch.Tensor) -> None:
    rows, cols = out.shape
    if rows == 0 or cols == 0:
        return
    _decompress24_kernel[_grid(rows, meta.shape[1])](
        values,
        meta,
        out,
        rows,
        cols // 4,
        values.stride(0),
        values.stride(1),
        meta.stride(0),
        meta.stride(1),
        out.stride(0),
        out.stride(1),
        BLOCK_R=_BLOCK_R,
        BLOCK_W=_BLOCK_W,
    )


def _dtype_reason(dtype: torch.dtype) -> str | None:
    return None if dtype in _KERNEL_DTYPES else f"dtype {dtype} (the kernel takes fp16, bf16, fp32)"


def _empty_compressed(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = weight.shape
    values = torch.empty(rows, cols // 2, dtype=weight.dtype, device=weight.device)
    meta = torch.empty(meta_shape(rows, cols), dtype=torch.int16, device=weight.device)
    return values, meta


def compress_24(weight: torch.Tensor, *, impl: Impl = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Compress a 2:4 weight ``(out, in)`` into ``(values, meta)``; raise naming the first non-2:4 group."""
    _check_weight(weight)
    weight = weight.detach()
    if not choose_impl("compress_24", impl, weight, unsupported=_dtype_reason(weight.dtype)):
        return compress_24_reference(weight)
    values, meta = _empty_compressed(weight)
    first_bad = _compress_24_triton(weight, values, meta, prune=False)
    if first_bad is not None:
        raise _bad_group_error(weight, *divmod(first_bad, weight.shape[1] // 4))
    return values, meta


def decompress_24(
    values: torch.Tensor, meta: torch.Tensor, *, out: torch.Tensor | None = None, impl: Impl = "auto"
) -> torch.Tensor:
    """Dense weight ``(out, in)`` from ``(values, meta)``, exactly; written into ``out`` if given."""
    rows, cols = check_compressed(values, meta)
    if out is not None and (tuple(out.shape) != (rows, cols) or out.dtype != values.dtype):
        raise ValueError(
            f"out must be {values.dtype} of shape {(rows, cols)}, got {out.dtype} {tuple(out.shape)}"
        )
    if not choose_impl("decompress_24", impl, values, meta, unsupported=_dtype_reason(values.dtype)):
        dense = decompress_24_reference(values, meta)
        return dense if out is None else out.copy_(dense)
    if out is None:
        out = torch.empty(rows, cols, dtype=values.dtype, device=values.device)
    _decompress_24_triton(values, meta, out)
    return out


def prune_and_compress_24(
    weight: torch.Tensor, scale: torch.Tensor | None = None, *, impl: Impl = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune the two lowest ``|W| * scale`` of every four columns and compress, in one pass over ``W``."""
    _check_weight(weight)
    weight = weight.detach()
    if scale is not None:
        if scale.numel() != weight.shape[1]:
            raise ValueError(f"scale has {scale.numel()} entries, weight has {weight.shape[1]} columns")
        scale = scale.detach().reshape(-1).to(device=weight.device, dtype=torch.float32).contiguous()
    if not choose_impl("prune_and_compress_24", impl, weight, unsupported=_dtype_reason(weight.dtype)):
        return prune_and_compress_24_reference(weight, scale)
    values, meta = _empty_compressed(weight)
    _compress_24_triton(weight, values, meta, scale, prune=True)
    return values, meta
