"""SparseGPT's blocked OBS solve: choose the mask and update the surviving weights, block by block.

Inputs are the float32 weight ``W`` (out x in) and ``Hinv``, the *upper* Cholesky factor of the damped
inverse Hessian (``H^-1 = Hinv^T Hinv``), as DESIGN.md and the SparseGPT paper define them. Columns are
walked in blocks of ``blocksize``:

* unstructured: before the block's column loop, one threshold over the whole block: the
  ``floor(sparsity * rows * block_cols)`` smallest ``w^2 / Hinv_cc^2`` are pruned (stable order; the
  original code's ``<= threshold`` prunes one more, which breaks exact sparsity);
* N:M: at every ``M``-th column, the ``N`` smallest ``w^2 / Hinv_cc^2`` of the next ``M`` columns of the
  *updated* weights are pruned;
* per column ``c``: ``err = (w - q) / Hinv_cc`` with ``q`` the pruned column, then the rank-1 update
  ``W[:, c:] -= err Hinv[c, c:]`` inside the block;
* after the block, the lazy update ``W[:, i2:] -= Err @ Hinv[i1:i2, i2:]``.

Rows are independent given ``Hinv``, which is what a kernel exploits.

Kernel
------
``_sparsegpt_block_kernel`` runs one block: a program owns ``BLOCK_M`` rows and holds their block of ``W``
(``BLOCK_M x BLOCK_C`` fp32, ``BLOCK_C`` = the block width rounded up to a power of two) in registers while
it walks the block's columns in order. Per column it extracts ``w`` from the tile, forms ``q`` and
``err = (w - q) / d`` (IEEE division, as torch divides), applies the rank-1 update with row ``c`` of ``Hinv``
(columns ``>= c`` only, as the reference slices) and records ``err`` in the ``Err`` tile; at the end it
stores the updated block, ``Err`` and the keep-mask. N:M groups are ranked inside the kernel at every
``M``-th column, from the updated weights, with the stable rank of ``topk_mask``'s N:M kernel. The
unstructured block mask needs every row of the block, so the host computes it first in torch
(:func:`block_prune_mask`: ``kthvalue`` for the threshold, a ``cumsum`` over its ties in flattened order,
equal to the reference's stable sort) and the kernel loads it. The lazy trailing update
``W[:, i2:] -= Err @ Hinv[i1:i2, i2:]`` is one ``addmm_`` (cuBLAS on a GPU).

Layout: the solve works on its own contiguous fp32 copy of ``W`` (updated in place, block by block), an
``Err`` buffer of ``rows x blocksize`` fp32 reused by every block, and the bool keep-mask written through its
``uint8`` view. ``Hinv`` is read with its own strides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import triton
import triton.language as tl

from polysparse.kernels.dispatch import Impl, choose_impl, forced_impl, interpreter_enabled

COMPILE_OPTIONS = {"enable_fp_fusion": False}
"""The block kernel is compiled without multiply-add fusion. The reference (and the original SparseGPT code)
rounds ``err * Hinv[c, c:]`` and the subtraction ``W1 - ...`` separately, torch elementwise kernels on any
device do too; a fused ``fma`` rounds once, so over a block's 128 rank-1 updates the kernel's weights would
drift from the reference's by a few ulps and an N:M mask chosen from them could flip on near-ties. Without
fusion each operation rounds exactly as torch's does, so the GPU mask tests compare like with like (the
PTX is checked for ``fma.rn.f32`` in ``tests/kernels/test_compile_offline.py``). The cost is nil: the
kernel is bound by its serial column walk, not by arithmetic."""

MAX_KERNEL_BLOCKSIZE = 512
"""Wider blocks do not fit a row tile in registers; they run on the reference."""

# ----------------------------------------------------------------------------------------------------------
# PyTorch reference
# ----------------------------------------------------------------------------------------------------------


def _block_prune_mask(w_block: torch.Tensor, hinv_diag: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True = prune: the ``floor(sparsity * numel)`` smallest ``w^2 / d^2`` over the whole block."""
    saliency = (w_block**2 / hinv_diag.reshape(1, -1) ** 2).flatten()
    count = int(saliency.numel() * sparsity)
    prune = torch.zeros_like(saliency, dtype=torch.bool)
    if count:
        prune[torch.sort(saliency, stable=True).indices[:count]] = True
    return prune.reshape(w_block.shape)


def sparsegpt_solve_reference(
    weight: torch.Tensor,
    hinv: torch.Tensor,
    *,
    sparsity: float | None = None,
    n: int | None = None,
    m: int | None = None,
    blocksize: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(pruned_and_updated_weight, keep_mask)``; ``weight`` is not modified."""
    W = weight.detach().float().clone()
    hinv = hinv.float()
    rows, cols = W.shape
    keep = torch.ones_like(W, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Hinv1 = hinv[i1:i2, i1:i2]
        d = torch.diagonal(Hinv1)
        Err1 = torch.zeros_like(W1)
        prune1 = (
            _block_prune_mask(W1, d, sparsity)
            if sparsity is not None
            else torch.zeros_like(W1, dtype=torch.bool)
        )
        for i in range(i2 - i1):
            if n is not None and i % m == 0:
                saliency = W1[:, i : i + m] ** 2 / d[i : i + m].reshape(1, -1) ** 2
                order = torch.sort(saliency, dim=1, stable=True).indices
                prune1[:, i : i + m].scatter_(1, order[:, :n], True)
            w = W1[:, i]
            q = w.masked_fill(prune1[:, i], 0.0)
            err = (w - q) / d[i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        keep[:, i1:i2] = ~prune1
        W[:, i2:] -= Err1 @ hinv[i1:i2, i2:]
    return W, keep


@contextlib.contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads on the CPU (unchanged on other devices' work)."""
    before = torch.get_num_threads()
    if before != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if before != count:
            torch.set_num_threads(before)


def sparsegpt_solve_torch(
    weight: torch.Tensor,
    hinv: torch.Tensor,
    *,
    sparsity: float | None = None,
    n: int | None = None,
    m: int | None = None,
    blocksize: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's algorithm, faster where Triton cannot run (CPU): same masks, weights equal up to
    float rounding.

    The reference's rank-1 update ``W1[:, i:] -= err[:, None] * Hinv1[i, i:]`` builds the outer product in a
    temporary before subtracting it (a large share of a CPU prune's time: docs/cpu-speed.md). Here it is one
    in-place BLAS ``ger``
    (``addr_``; it may fuse the multiply-add, hence rounding differences), the column about to be
    replaced by ``q`` is not updated, and the unstructured block mask comes from
    :func:`block_prune_mask` (``kthvalue`` instead of sorting the whole block; the same mask).

    The column walk runs on one intra-op thread: its operations are small (rows x at most ``blocksize``),
    and on a busy machine every multi-threaded small op waits for a descheduled worker thread
    (docs/cpu-speed.md); the large trailing ``addmm_`` keeps every thread.
    """
    W = weight.detach().float().clone()
    hinv = hinv.float()
    rows, cols = W.shape
    keep = torch.ones_like(W, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Hinv1 = hinv[i1:i2, i1:i2]
        d = torch.diagonal(Hinv1)
        Err1 = torch.empty_like(W1)
        if sparsity is not None:
            prune1 = block_prune_mask(W1, d, sparsity)
        else:
            prune1 = torch.zeros_like(W1, dtype=torch.bool)
        with _intra_op_threads(1):
            for i in range(i2 - i1):
                if n is not None and i % m == 0:
                    saliency = W1[:, i : i + m] ** 2 / d[i : i + m].reshape(1, -1) ** 2
                    order = torch.sort(saliency, dim=1, stable=True).indices
                    prune1[:, i : i + m].scatter_(1, order[:, :n], True)
                w = W1[:, i]
                q = w.masked_fill(prune1[:, i], 0.0)
                err = (w - q) / d[i]
                W1[:, i + 1 :].addr_(err, Hinv1[i, i + 1 :], alpha=-1.0)
                W1[:, i] = q
                Err1[:, i] = err
        W[:, i1:i2] = W1
        keep[:, i1:i2] = ~prune1
        if i2 < cols:
            W[:, i2:].addmm_(Err1, hinv[i1:i2, i2:], alpha=-1.0)
    return W, keep


# ----------------------------------------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------------------------------------


@triton.jit
def _sparsegpt_block_kernel(
    w_ptr,
    hinv_ptr,
    prune_ptr,
    err_ptr,
    keep_ptr,
    n_rows,
    n_block_cols,
    col0,
    stride_wm,
    stride_wn,
    stride_hm,
    stride_hn,
    stride_pm,
    stride_pn,
    stride_em,
    stride_en,
    stride_km,
    stride_kn,
    NM: tl.constexpr,
    NM_N: tl.constexpr,
    STEP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.arange(0, BLOCK_C)
    cols = offs_c[None, :]
    col_ok = offs_c < n_block_cols
    tile_ok = (offs_m < n_rows)[:, None] & col_ok[None, :]
    rows64 = offs_m.to(tl.int64)[:, None]
    cols64 = (col0 + offs_c).to(tl.int64)
    w_ptrs = w_ptr + rows64 * stride_wm + cols64[None, :] * stride_wn
    W1 = tl.load(w_ptrs, mask=tile_ok, other=0.0)
    # Diagonal of the block of Hinv; padding columns get 1 so that nothing divides by zero.
    d = tl.load(hinv_ptr + cols64 * (stride_hm + stride_hn), mask=col_ok, other=1.0)
    dd = (d * d)[None, :]
    if NM:
        prune = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.int1)
    else:
        # Unstructured: the host chose the block's mask from all rows before this launch.
        p_ptrs = prune_ptr + rows64 * stride_pm + offs_c.to(tl.int64)[None, :] * stride_pn
        prune = tl.load(p_ptrs, mask=tile_ok, other=0) != 0
    Err = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)

    # STEP = M for N:M (the block width is then a multiple of M), else 1.
    for g in range(0, n_block_cols, STEP):
        if NM:
            # Choose this group's mask from the weights as updated so far: stable rank of w^2 / d^2.
            sal = tl.math.div_rn(W1 * W1, dd)
            in_group = (cols >= g) & (cols < g + STEP)
            rank = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.int32)
            for t in tl.static_range(STEP):
                sal_t = tl.sum(tl.where(cols == g + t, sal, 0.0), axis=1)[:, None]
                rank += ((sal_t < sal) | ((sal_t == sal) & (cols > g + t))).to(tl.int32)
            prune = prune | (in_group & (rank < NM_N))
        for t in tl.static_range(STEP):
            c = g + t
            at_c = cols == c
            # Column c of the tile (a sum with one non-zero term is exact).
            w = tl.sum(tl.where(at_c, W1, 0.0), axis=1)
            pruned = tl.sum(tl.where(at_c & prune, 1, 0), axis=1) > 0
            q = tl.where(pruned, 0.0, w)
            d_c = tl.load(hinv_ptr + (col0 + c).to(tl.int64) * (stride_hm + stride_hn))
            err = tl.math.div_rn(w - q, d_c)
            # Row c of Hinv from column c on: the reference updates W1[:, c:] only.
            h = tl.load(
                hinv_ptr + (col0 + c).to(tl.int64) * stride_hm + cols64 * stride_hn,
                mask=col_ok & (offs_c >= c),
                other=0.0,
            )
            W1 = W1 - err[:, None] * h[None, :]
            W1 = tl.where(at_c, q[:, None], W1)
            Err = tl.where(at_c, err[:, None], Err)

    tl.store(w_ptrs, W1, mask=tile_ok)
    e_ptrs = err_ptr + rows64 * stride_em + offs_c.to(tl.int64)[None, :] * stride_en
    tl.store(e_ptrs, Err, mask=tile_ok)
    k_ptrs = keep_ptr + rows64 * stride_km + cols64[None, :] * stride_kn
    tl.store(k_ptrs, tl.where(prune, 0, 1).to(tl.uint8), mask=tile_ok)


JIT_KERNELS = {"sparsegpt_block": _sparsegpt_block_kernel}
"""This module's ``@triton.jit`` kernel (what ``bench/kernels/compiled.py`` compiles)."""


# ----------------------------------------------------------------------------------------------------------
# Launchers (no validation: the wrapper below checks first; tests call these to write into given buffers)
# ----------------------------------------------------------------------------------------------------------


def block_prune_mask(w_block: torch.Tensor, hinv_diag: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Same mask as the reference's ``_block_prune_mask`` without sorting the block.

    ``kthvalue`` finds the ``count``-th smallest saliency ``t``; every value below ``t`` is pruned and so are
    the first ``count - #below`` values equal to ``t`` in flattened (row-major) order, which is the order in
    which a stable sort lists them. No host synchronisation.
    """
    saliency = (w_block**2 / hinv_diag.reshape(1, -1) ** 2).flatten()
    count = int(saliency.numel() * sparsity)
    if count == 0:
        return torch.zeros(w_block.shape, dtype=torch.bool, device=w_block.device)
    t = torch.kthvalue(saliency, count).values
    below = saliency < t
    tie = saliency == t
    need = count - below.sum()
    return (below | (tie & (tie.cumsum(0) <= need))).reshape(w_block.shape)


def _block_m(rows: int, block_c: int) -> int:
    if interpreter_enabled():
        # The interpreter's cost is per operation and per program, not per element: one program.
        return max(1, min(triton.next_power_of_2(rows), 65536 // block_c))
    # Small row tiles: many programs in flight hide the latency of the serial column walk.
    return max(1, min(8, 2048 // block_c))


def launch_sparsegpt_block(
    W: torch.Tensor,
    hinv: torch.Tensor,
    i1: int,
    i2: int,
    err: torch.Tensor,
    keep: torch.Tensor,
    *,
    prune: torch.Tensor | None = None,
    n: int | None = None,
    m: int | None = None,
    block_m: int | None = None,
) -> None:
    """Run ``_sparsegpt_block_kernel`` on columns ``[i1, i2)`` of the fp32 work matrix ``W`` (in place).

    Writes ``err[:, :i2 - i1]`` (fp32) and ``keep[:, i1:i2]`` (bool). Unstructured: ``prune`` is the block's
    bool prune-mask (rows x (i2 - i1)); N:M: give ``n`` and ``m`` instead (``i2 - i1`` a multiple of ``m``).
    """
    rows = W.shape[0]
    width = i2 - i1
    if rows == 0 or width == 0:
        return
    block_c = triton.next_power_of_2(width)
    if block_m is None:
        block_m = _block_m(rows, block_c)
    nm = n is not None
    prune_u8 = prune.view(torch.uint8) if prune is not None else keep.view(torch.uint8)  # unread for N:M
    keep_u8 = keep.view(torch.uint8)
    grid = (triton.cdiv(rows, block_m),)
    _sparsegpt_block_kernel[grid](
        W,
        hinv,
        prune_u8,
        err,
        keep_u8,
        rows,
        width,
        i1,
        W.stride(0),
        W.stride(1),
        hinv.stride(0),
        hinv.stride(1),
        prune_u8.stride(0),
        prune_u8.stride(1),
        err.stride(0),
        err.stride(1),
        keep_u8.stride(0),
        keep_u8.stride(1),
        NM=nm,
        NM_N=n if nm else 0,
        STEP=m if nm else 1,
        BLOCK_M=block_m,
        BLOCK_C=block_c,
        num_warps=4,
        **COMPILE_OPTIONS,
    )


def sparsegpt_solve_triton(
    weight: torch.Tensor,
    hinv: torch.Tensor,
    *,
    sparsity: float | None = None,
    n: int | None = None,
    m: int | None = None,
    blocksize: int = 128,
    block_m: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The blocked solve with the Triton block kernel; arguments as for :func:`sparsegpt_solve`."""
    W = torch.empty(weight.shape, dtype=torch.float32, device=weight.device)
    W.copy_(weight.detach())  # the solve's own row-major fp32 copy, whatever the input's dtype and strides
    hinv = hinv.detach().float()
    rows, cols = W.shape
    keep = torch.empty((rows, cols), dtype=torch.bool, device=W.device)
    err = torch.empty((rows, min(blocksize, cols)), dtype=torch.float32, device=W.device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        prune = None
        if sparsity is not None:
            d = torch.diagonal(hinv[i1:i2, i1:i2])
            prune = block_prune_mask(W[:, i1:i2], d, sparsity)
        launch_sparsegpt_block(W, hinv, i1, i2, err, keep, prune=prune, n=n, m=m, block_m=block_m)
        if i2 < cols:
            W[:, i2:].addmm_(err[:, : i2 - i1], hinv[i1:i2, i2:], alpha=-1.0)
    return W, keep


# ----------------------------------------------------------------------------------------------------------
# Host wrapper
# ----------------------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sparsegpt_solve(
    weight: torch.Tensor,
    hinv: torch.Tensor,
    *,
    sparsity: float | None = None,
    n: int | None = None,
    m: int | None = None,
    blocksize: int = 128,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune ``weight`` with SparseGPT given ``hinv``; returns a new float32 weight and the keep-mask."""
    if weight.dim() != 2 or hinv.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"weight {tuple(weight.shape)} and Hinv {tuple(hinv.shape)} do not fit")
    if weight.device != hinv.device:
        raise ValueError(f"weight is on {weight.device}, Hinv on {hinv.device}")
    if not (weight.is_floating_point() and hinv.is_floating_point()):
        raise ValueError(f"weight and Hinv must be floating point, got {weight.dtype} and {hinv.dtype}")
    if not _is_int(blocksize) or blocksize < 1:
        raise ValueError(f"blocksize must be a positive int, got {blocksize!r}")
    if (sparsity is None) == (n is None):
        raise ValueError("give exactly one of sparsity or n/m")
    if sparsity is not None and not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if n is not None:
        if not (_is_int(n) and _is_int(m)) or not 0 < n < m:
            raise ValueError(f"N:M pattern needs ints 0 < N < M, got {n}:{m}")
        if blocksize % m or weight.shape[1] % m:
            raise ValueError(
                f"blocksize={blocksize} and in_features={weight.shape[1]} must be multiples of M={m}"
            )
    unsupported = None
    if blocksize > MAX_KERNEL_BLOCKSIZE:
        unsupported = f"blocksize={blocksize} > {MAX_KERNEL_BLOCKSIZE} has no kernel"
    if choose_impl("sparsegpt_solve", impl, weight, hinv, unsupported=unsupported):
        return sparsegpt_solve_triton(weight, hinv, sparsity=sparsity, n=n, m=m, blocksize=blocksize)
    if (forced_impl() if impl == "auto" else impl) == "reference":
        return sparsegpt_solve_reference(weight, hinv, sparsity=sparsity, n=n, m=m, blocksize=blocksize)
    return sparsegpt_solve_torch(weight, hinv, sparsity=sparsity, n=n, m=m, blocksize=blocksize)
