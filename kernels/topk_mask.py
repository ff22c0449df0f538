"""Per-row top-k scoring and mask selection (magnitude and Wanda masks).

Scores are ``|W| * scale[None, :]`` in float32 (``scale`` is Wanda's per-input activation norm; ``None``
gives magnitude). Two selections, both per output row:

* unstructured: the ``k`` lowest scores of every row are pruned, ties broken like a stable ascending sort
  (the lower column index is pruned first), so every row keeps exactly ``in_features - k`` weights;
* N:M: in every group of ``M`` consecutive columns of a row, the ``N`` lowest scores are pruned (stable
  ties again). ``N:M`` names the pruned count, as the Wanda and SparseGPT code do: 2:4 keeps two of four.

Masks are boolean with ``True`` = kept.
"""

from __future__ import annotations

import torch

from polysparse.kernels._dispatch import Impl, choose_impl

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
# Host wrapper
# ----------------------------------------------------------------------------------------------------------


def _validate(weight: torch.Tensor, scale: torch.Tensor | None) -> None:
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight (out x in), got shape {tuple(weight.shape)}")
    if scale is not None and scale.numel() != weight.shape[1]:
        raise ValueError(f"scale has {scale.numel()} entries, weight has {weight.shape[1]} columns")


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
    if not 0 <= prune_per_row <= weight.shape[1]:
        raise ValueError(f"prune_per_row={prune_per_row} outside [0, {weight.shape[1]}]")
    choose_impl("unstructured_mask", impl, weight, unsupported="no Triton kernel yet")
    keep = unstructured_mask_reference(weight, scale, prune_per_row)
    if zero_pruned:
        weight.masked_fill_(~keep, 0)
    return keep


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
    if not 0 < n < m:
        raise ValueError(f"N:M pattern needs 0 < N < M, got {n}:{m}")
    if weight.shape[1] % m:
        raise ValueError(f"in_features={weight.shape[1]} is not a multiple of M={m}")
    choose_impl("nm_mask", impl, weight, unsupported="no Triton kernel yet")
    keep = nm_mask_reference(weight, scale, n, m)
    if zero_pruned:
        weight.masked_fill_(~keep, 0)
    return keep
