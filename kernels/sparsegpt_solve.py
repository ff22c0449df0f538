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
"""

from __future__ import annotations

import torch

from polysparse.kernels._dispatch import Impl, choose_impl

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


# ----------------------------------------------------------------------------------------------------------
# Host wrapper
# ----------------------------------------------------------------------------------------------------------


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
    if (sparsity is None) == (n is None):
        raise ValueError("give exactly one of sparsity or n/m")
    if sparsity is not None and not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if n is not None:
        if m is None or not 0 < n < m:
            raise ValueError(f"N:M pattern needs 0 < N < M, got {n}:{m}")
        if blocksize % m or weight.shape[1] % m:
            raise ValueError(f"blocksize={blocksize} and in_features={weight.shape[1]} must be multiples of M={m}")
    choose_impl("sparsegpt_solve", impl, weight, hinv, unsupported="no Triton kernel yet")
    return sparsegpt_solve_reference(weight, hinv, sparsity=sparsity, n=n, m=m, blocksize=blocksize)
