"""Per-row top-k scoring and mask selection (magnitude and Wanda masks).

Scores are ``|W| * scale[None, :]`` in float32 (``scale`` is Wanda's per-input activation norm; ``None``
gives magnitude). Two selections, both per output row:

* unstructured: the ``k`` lowest scores of every row are pruned, ties broken like a stable ascending sort
  (the lower column index is pruned first), so every row keeps exactly ``in_features - k`` weights;
* N:M: in every group of ``M`` consecutive columns of a row, the ``N`` lowest scores are pruned (stable
  ties again). ``N:M`` names the pruned count, as the Wanda and SparseGPT code do: 2:4 keeps two of four.

Masks are boolean with ``True`` = kept.

Kernels
-------
Both kernels read ``W`` (out x in; fp32, fp16 or bf16; any strides) once per selection pass, score in fp32,
write the keep-mask (a ``bool`` tensor, written through its ``uint8`` view) and, with ``zero_pruned``, store
zeros into the pruned weights of ``W`` in place.

Scores are compared as int32 *order keys*: the fp32 bit pattern with the low 31 bits flipped for negative
values, so that signed integer order equals float order (non-negative scores keep their bit pattern). Before
that, ``-0.0`` becomes ``+0.0`` and every NaN becomes one key above ``+inf``: ``torch.sort`` treats the two
zeros as equal and puts NaNs last, and the keys must tie exactly where the reference's sort ties.

* ``_unstructured_mask_kernel``: a program owns ``BLOCK_M`` rows. It bisects the 2^32 key range 32 times
  (``count(key <= mid) >= k``) to find ``t``, the k-th smallest key of each row, then prunes every key below
  ``t`` and the first ``k - count(key < t)`` keys equal to ``t`` in column order (an inclusive ``cumsum`` of
  the ties), which is exactly what a stable ascending sort prunes. Rows up to ``MAX_ONE_TILE_COLS`` columns
  are loaded once and kept in registers (one read of ``W``); longer rows are walked in ``BLOCK_N`` column
  chunks on every pass (34 reads of the row, mostly from L2), with a running tie count across chunks.
* ``_nm_mask_kernel``: a program owns a ``BLOCK_M x BLOCK_G x M`` tile (rows x groups x group members) and
  ranks each member inside its group: ``rank_j = #{i : key_i < key_j or (key_i == key_j and i < j)}``,
  pruning ``rank_j < N``. That is ``M`` compares per weight for ``M <= 16``, one read of ``W``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from polysparse.kernels.dispatch import Impl, choose_impl, interpreter_enabled

KERNEL_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
KERNEL_SCALE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
MAX_KERNEL_M = 16
MAX_ONE_TILE_COLS = 16384
"""Rows up to this many columns stay in registers; longer rows are walked in chunks of ``CHUNK_COLS``."""
CHUNK_COLS = 4096
ROWS_TILE_ELEMENTS = 4096
"""Short rows are packed several to a program, up to this many scores per program on a GPU."""
INTERPRETER_TILE_ELEMENTS = 65536
"""The interpreter's cost is per operation and per program, not per element: it gets larger tiles."""

# ----------------------------------------------------------------------------------------------------------
# PyTorch reference
# ----------------------------------------------------------------------------------------------------------


def scores_reference(weight: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``|W| * scale`` in float32 (``scale`` broadcast over rows)."""
    scores = weight.detach().float().abs()
    if scale is not None:
        scores = scores * scale.detach().float().reshape(1, -1)
    return scores


def unstructured_mask_reference(
    weight: torch.Tensor, scale: torch.Tensor | None, prune_per_row: int
) -> torch.Tensor:
    """Keep-mask that prunes the ``prune_per_row`` lowest scores of every row (stable ties)."""
    scores = scores_reference(weight, scale)
    keep = torch.ones_like(scores, dtype=torch.bool)
    if prune_per_row > 0:
        order = torch.sort(scores, dim=1, stable=True).indices
        keep.scatter_(1, order[:, :prune_per_row], False)
    return keep


def nm_mask_reference(weight: torch.Tensor, scale: torch.Tensor | None, n: int, m: int) -> torch.Tensor:
    """Keep-mask that prunes the ``n`` lowest of every ``m`` consecutive scores of every row (stable ties)."""
    scores = scores_reference(weight, scale)
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=2, stable=True).indices
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(2, order[:, :, :n], False)
    return keep.reshape(rows, cols)


# ----------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------


@triton.jit
def _order_key(s):
    """int32 keys whose signed order is the float order of ``s``, tied where ``torch.sort`` ties."""
    # -0.0 and +0.0 compare equal in torch.sort but have different bit patterns.
    s = tl.where(s == 0.0, 0.0, s)
    bits = s.to(tl.int32, bitcast=True)
    # Negative floats order backwards as integers: flipping their low 31 bits fixes that.
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    # torch.sort puts NaNs after +inf (bits 0x7F800000), tied among themselves.
    return tl.where(s != s, 0x7FFFFFFF, key)


@triton.jit
def _load_keys(w_ptrs, scale_ptr, cols, stride_s, valid, HAS_SCALE: tl.constexpr):
    """Order keys of the fp32 scores ``|w| * scale[col]`` of a tile of ``W``."""
    w = tl.load(w_ptrs, mask=valid, other=0.0)
    s = tl.abs(w.to(tl.float32))
    if HAS_SCALE:
        sc = tl.load(scale_ptr + cols.to(tl.int64) * stride_s, mask=valid, other=0.0)
        s = s * sc.to(tl.float32)
    return _order_key(s)


@triton.jit
def _unstructured_mask_kernel(
    w_ptr,
    scale_ptr,
    keep_ptr,
    n_rows,
    n_cols,
    k,
    stride_wm,
    stride_wn,
    stride_s,
    stride_km,
    stride_kn,
    HAS_SCALE: tl.constexpr,
    ZERO_PRUNED: tl.constexpr,
    ONE_TILE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = offs_m < n_rows
    # int64 row offsets: out x in can exceed 2^31 elements.
    w_rows = w_ptr + offs_m.to(tl.int64)[:, None] * stride_wm
    keep_rows = keep_ptr + offs_m.to(tl.int64)[:, None] * stride_km
    # Bisection bounds over all int32 keys: after 32 halvings lo == hi == the k-th smallest key.
    lo = tl.full([BLOCK_M], -2147483648, tl.int32)
    hi = tl.full([BLOCK_M], 2147483647, tl.int32)

    if ONE_TILE:
        # The whole row fits on chip: load it once, select in registers, store once.
        offs_n = tl.arange(0, BLOCK_N)
        valid = row_ok[:, None] & (offs_n[None, :] < n_cols)
        w_ptrs = w_rows + offs_n.to(tl.int64)[None, :] * stride_wn
        key = _load_keys(w_ptrs, scale_ptr, offs_n[None, :], stride_s, valid, HAS_SCALE)
        for _ in range(32):
            # floor((lo + hi) / 2) without int32 overflow.
            mid = (lo & hi) + ((lo ^ hi) >> 1)
            count = tl.sum((valid & (key <= mid[:, None])).to(tl.int32), axis=1)
            enough = count >= k
            hi = tl.where(enough, mid, hi)
            lo = tl.where(enough, lo, mid + 1)
        below = valid & (key < lo[:, None])
        tie = valid & (key == lo[:, None])
        need = k - tl.sum(below.to(tl.int32), axis=1)
        # A stable sort prunes the ties in column order: the first `need` of them.
        tie_rank = tl.cumsum(tie.to(tl.int32), axis=1)
        prune = below | (tie & (tie_rank <= need[:, None]))
        keep_ptrs = keep_rows + offs_n.to(tl.int64)[None, :] * stride_kn
        tl.store(keep_ptrs, tl.where(prune, 0, 1).to(tl.uint8), mask=valid)
        if ZERO_PRUNED:
            zeros = tl.zeros([BLOCK_M, BLOCK_N], dtype=w_ptr.dtype.element_ty)
            tl.store(w_ptrs, zeros, mask=valid & prune)
    else:
        # Rows longer than a tile: every pass re-reads the row chunk by chunk (from L2 after the first).
        for _ in range(32):
            mid = (lo & hi) + ((lo ^ hi) >> 1)
            count = tl.zeros([BLOCK_M], dtype=tl.int32)
            for start in range(0, n_cols, BLOCK_N):
                offs_n = start + tl.arange(0, BLOCK_N)
                valid = row_ok[:, None] & (offs_n[None, :] < n_cols)
                w_ptrs = w_rows + offs_n.to(tl.int64)[None, :] * stride_wn
                key = _load_keys(w_ptrs, scale_ptr, offs_n[None, :], stride_s, valid, HAS_SCALE)
                count += tl.sum((valid & (key <= mid[:, None])).to(tl.int32), axis=1)
            enough = count >= k
            hi = tl.where(enough, mid, hi)
            lo = tl.where(enough, lo, mid + 1)
        n_below = tl.zeros([BLOCK_M], dtype=tl.int32)
        for start in range(0, n_cols, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            valid = row_ok[:, None] & (offs_n[None, :] < n_cols)
            w_ptrs = w_rows + offs_n.to(tl.int64)[None, :] * stride_wn
            key = _load_keys(w_ptrs, scale_ptr, offs_n[None, :], stride_s, valid, HAS_SCALE)
            n_below += tl.sum((valid & (key < lo[:, None])).to(tl.int32), axis=1)
        need = k - n_below
        ties_before = tl.zeros([BLOCK_M], dtype=tl.int32)
        for start in range(0, n_cols, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            valid = row_ok[:, None] & (offs_n[None, :] < n_cols)
            w_ptrs = w_rows + offs_n.to(tl.int64)[None, :] * stride_wn
            key = _load_keys(w_ptrs, scale_ptr, offs_n[None, :], stride_s, valid, HAS_SCALE)
            below = valid & (key < lo[:, None])
            tie = valid & (key == lo[:, None])
            # Ties rank in column order across chunks: those of earlier chunks come first.
            tie_rank = ties_before[:, None] + tl.cumsum(tie.to(tl.int32), axis=1)
            prune = below | (tie & (tie_rank <= need[:, None]))
            keep_ptrs = keep_rows + offs_n.to(tl.int64)[None, :] * stride_kn
            tl.store(keep_ptrs, tl.where(prune, 0, 1).to(tl.uint8), mask=valid)
            if ZERO_PRUNED:
                zeros = tl.zeros([BLOCK_M, BLOCK_N], dtype=w_ptr.dtype.element_ty)
                tl.store(w_ptrs, zeros, mask=valid & prune)
            ties_before += tl.sum(tie.to(tl.int32), axis=1)


@triton.jit
def _nm_mask_kernel(
    w_ptr,
    scale_ptr,
    keep_ptr,
    n_rows,
    n_groups,
    stride_wm,
    stride_wn,
    stride_s,
    stride_km,
    stride_kn,
    N: tl.constexpr,
    M: tl.constexpr,
    M_PAD: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    ZERO_PRUNED: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_G: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_g = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_g = pid_g * BLOCK_G + tl.arange(0, BLOCK_G)
    offs_j = tl.arange(0, M_PAD)
    # Tile axes: rows x groups x members of a group; column = group * M + member.
    cols = offs_g[None, :, None] * M + offs_j[None, None, :]
    valid = (
        (offs_m < n_rows)[:, None, None] & (offs_g < n_groups)[None, :, None] & (offs_j < M)[None, None, :]
    )
    w_ptrs = w_ptr + offs_m.to(tl.int64)[:, None, None] * stride_wm + cols.to(tl.int64) * stride_wn
    key = _load_keys(w_ptrs, scale_ptr, cols, stride_s, valid, HAS_SCALE)
    # Stable rank of each member inside its group; the N lowest ranks are pruned.
    rank = tl.zeros([BLOCK_M, BLOCK_G, M_PAD], dtype=tl.int32)
    member = offs_j[None, None, :]
    for i in tl.static_range(M):
        # Member i's key, broadcast over its group (a sum with one non-zero term is exact).
        key_i = tl.sum(tl.where(member == i, key, 0), axis=2)[:, :, None]
        rank += ((key_i < key) | ((key_i == key) & (member > i))).to(tl.int32)
    prune = rank < N
    keep_ptrs = keep_ptr + offs_m.to(tl.int64)[:, None, None] * stride_km + cols.to(tl.int64) * stride_kn
    tl.store(keep_ptrs, tl.where(prune, 0, 1).to(tl.uint8), mask=valid)
    if ZERO_PRUNED:
        zeros = tl.zeros([BLOCK_M, BLOCK_G, M_PAD], dtype=w_ptr.dtype.element_ty)
        tl.store(w_ptrs, zeros, mask=valid & prune)


JIT_KERNELS = {"unstructured_mask": _unstructured_mask_kernel, "nm_mask": _nm_mask_kernel}
"""This module's ``@triton.jit`` kernels by role (what ``bench/kernels/compiled.py`` compiles)."""


# ----------------------------------------------------------------------------------------------------------
# Launchers (no validation: the wrappers below check first; tests call these to write into given buffers)
# ----------------------------------------------------------------------------------------------------------


def _tile_elements() -> int:
    return INTERPRETER_TILE_ELEMENTS if interpreter_enabled() else ROWS_TILE_ELEMENTS


def _num_warps(tile_elements: int) -> int:
    # About 8-16 scores per thread: enough to hide load latency without spilling the keys.
    return 4 if tile_elements <= 2048 else 8 if tile_elements <= 8192 else 16


def _scale_args(weight: torch.Tensor, scale: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    if scale is None:
        return weight, 0  # never read: HAS_SCALE=False
    flat = scale.detach().reshape(-1)
    return flat, flat.stride(0)


def launch_unstructured_mask(
    weight: torch.Tensor,
    scale: torch.Tensor | None,
    prune_per_row: int,
    keep: torch.Tensor,
    *,
    zero_pruned: bool = False,
    chunk_cols: int | None = None,
    block_m: int | None = None,
) -> torch.Tensor:
    """Run ``_unstructured_mask_kernel`` writing into ``keep`` (bool, out x in); returns ``keep``.

    ``chunk_cols`` forces the chunked path with that chunk width (a power of two); by default rows of up to
    ``MAX_ONE_TILE_COLS`` columns are selected in one tile. ``block_m`` (a power of two) overrides the rows
    per program.
    """
    rows, cols = weight.shape
    if rows == 0 or cols == 0:
        return keep
    one_tile = chunk_cols is None and cols <= MAX_ONE_TILE_COLS
    block_n = triton.next_power_of_2(cols) if one_tile else chunk_cols or CHUNK_COLS
    if block_m is None:
        block_m = max(1, min(_tile_elements() // block_n, triton.next_power_of_2(rows)))
    scale_arg, stride_s = _scale_args(weight, scale)
    keep_u8 = keep.view(torch.uint8)
    grid = (triton.cdiv(rows, block_m),)
    _unstructured_mask_kernel[grid](
        weight,
        scale_arg,
        keep_u8,
        rows,
        cols,
        prune_per_row,
        weight.stride(0),
        weight.stride(1),
        stride_s,
        keep_u8.stride(0),
        keep_u8.stride(1),
        HAS_SCALE=scale is not None,
        ZERO_PRUNED=zero_pruned,
        ONE_TILE=one_tile,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=_num_warps(block_m * block_n),
    )
    return keep


def launch_nm_mask(
    weight: torch.Tensor,
    scale: torch.Tensor | None,
    n: int,
    m: int,
    keep: torch.Tensor,
    *,
    zero_pruned: bool = False,
    block_m: int | None = None,
    block_g: int | None = None,
) -> torch.Tensor:
    """Run ``_nm_mask_kernel`` writing into ``keep`` (bool, out x in); returns ``keep``.

    ``block_m`` and ``block_g`` (powers of two) override the rows and groups per program.
    """
    rows, cols = weight.shape
    if rows == 0 or cols == 0:
        return keep
    groups = cols // m
    m_pad = triton.next_power_of_2(m)
    if block_g is None:
        # About 1024 columns of a row per program; 4 rows deep on a GPU.
        block_g = max(1, min(triton.next_power_of_2(groups), 1024 // m_pad))
    if block_m is None:
        block_m = max(1, min(_tile_elements() // (block_g * m_pad), triton.next_power_of_2(rows)))
    scale_arg, stride_s = _scale_args(weight, scale)
    keep_u8 = keep.view(torch.uint8)
    grid = (triton.cdiv(rows, block_m), triton.cdiv(groups, block_g))
    _nm_mask_kernel[grid](
        weight,
        scale_arg,
        keep_u8,
        rows,
        groups,
        weight.stride(0),
        weight.stride(1),
        stride_s,
        keep_u8.stride(0),
        keep_u8.stride(1),
        N=n,
        M=m,
        M_PAD=m_pad,
        HAS_SCALE=scale is not None,
        ZERO_PRUNED=zero_pruned,
        BLOCK_M=block_m,
        BLOCK_G=block_g,
        num_warps=_num_warps(block_m * block_g * m_pad),
    )
    return keep


# ----------------------------------------------------------------------------------------------------------
# Host wrapper
# ----------------------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(weight: torch.Tensor, scale: torch.Tensor | None) -> None:
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"expected a 2-D weight (out x in), got {shape}")
    if scale is not None:
        if scale.numel() != weight.shape[1]:
            raise ValueError(f"scale has {scale.numel()} entries, weight has {weight.shape[1]} columns")
        if scale.device != weight.device:
            raise ValueError(f"scale is on {scale.device}, weight on {weight.device}")


def _unsupported(weight: torch.Tensor, scale: torch.Tensor | None) -> str | None:
    """Why the kernels cannot take these inputs (the reference can), or None."""
    if weight.dtype not in KERNEL_WEIGHT_DTYPES:
        return f"weight dtype {weight.dtype} has no kernel"
    if scale is not None and scale.dtype not in KERNEL_SCALE_DTYPES:
        return f"scale dtype {scale.dtype} has no kernel"
    return None


def _inputs(weight: torch.Tensor, scale: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    return (weight,) if scale is None else (weight, scale)


def unstructured_mask(
    weight: torch.Tensor,
    scale: torch.Tensor | None = None,
    *,
    prune_per_row: int,
    zero_pruned: bool = False,
    impl: Impl = "auto",
) -> torch.Tensor:
    """Keep-mask pruning exactly ``prune_per_row`` weights in every row; optionally zero them in place."""
    _validate(weight, scale)
    if not _is_int(prune_per_row):
        raise ValueError(f"prune_per_row must be an int, got {type(prune_per_row).__name__}")
    if not 0 <= prune_per_row <= weight.shape[1]:
        raise ValueError(f"prune_per_row={prune_per_row} outside [0, {weight.shape[1]}]")
    use_triton = choose_impl(
        "unstructured_mask", impl, *_inputs(weight, scale), unsupported=_unsupported(weight, scale)
    )
    if not use_triton:
        keep = unstructured_mask_reference(weight, scale, prune_per_row)
        if zero_pruned:
            weight.detach().masked_fill_(~keep, 0)
        return keep
    keep = torch.empty(weight.shape, dtype=torch.bool, device=weight.device)
    # The kernel writes W in place only with zero_pruned; reading needs no gradient tracking either way.
    return launch_unstructured_mask(weight.detach(), scale, prune_per_row, keep, zero_pruned=zero_pruned)


def nm_mask(
    weight: torch.Tensor,
    scale: torch.Tensor | None = None,
    *,
    n: int,
    m: int,
    zero_pruned: bool = False,
    impl: Impl = "auto",
) -> torch.Tensor:
    """Keep-mask pruning ``n`` of every ``m`` consecutive weights per row; optionally zero them in place."""
    _validate(weight, scale)
    if not (_is_int(n) and _is_int(m)):
        raise ValueError(f"N and M must be ints, got {type(n).__name__} and {type(m).__name__}")
    if not 0 < n < m:
        raise ValueError(f"N:M pattern needs 0 < N < M, got {n}:{m}")
    if weight.shape[1] % m:
        raise ValueError(f"in_features={weight.shape[1]} is not a multiple of M={m}")
    unsupported = _unsupported(weight, scale)
    if unsupported is None and m > MAX_KERNEL_M:
        unsupported = f"M={m} > {MAX_KERNEL_M} has no kernel"
    use_triton = choose_impl("nm_mask", impl, *_inputs(weight, scale), unsupported=unsupported)
    if not use_triton:
        keep = nm_mask_reference(weight, scale, n, m)
        if zero_pruned:
            weight.detach().masked_fill_(~keep, 0)
        return keep
    keep = torch.empty(weight.shape, dtype=torch.bool, device=weight.device)
    return launch_nm_mask(weight.detach(), scale, n, m, keep, zero_pruned=zero_pruned)
