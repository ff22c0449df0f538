"""Magnitude and Wanda: score every weight, compare per output row, no weight update.

Magnitude scores ``|W_ij|``; Wanda scores ``|W_ij| * ||X_j||_2`` (Sun et al., 2023). Unstructured prunes
exactly ``floor(sparsity * in_features)`` weights in every row; N:M prunes the N lowest of every M
consecutive inputs in every row. Ties go like a stable sort. The selection runs in
:mod:`polysparse.kernels.topk_mask`.
"""

from __future__ import annotations

import torch

from polysparse.kernels.topk_mask import nm_mask, unstructured_mask
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods.common import LayerResult, check_prunable, prune_count
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError


def _prune_by_score(weight: torch.Tensor, scale: torch.Tensor | None, config: PruneConfig) -> LayerResult:
    check_prunable(weight, config)
    new_weight = weight.detach().clone()
    if config.pattern is not None:
        keep = nm_mask(new_weight, scale, n=config.pattern.n, m=config.pattern.m, zero_pruned=True)
    else:
        k = prune_count(weight.shape[1], config.target_sparsity)
        keep = unstructured_mask(new_weight, scale, prune_per_row=k, zero_pruned=True)
    return LayerResult(weight=new_weight, keep=keep)


def prune_magnitude(weight: torch.Tensor, stats: LayerStatistics | None, config: PruneConfig) -> LayerResult:
    """Prune the smallest ``|W|`` per row (``stats`` is ignored)."""
    return _prune_by_score(weight, None, config)


def prune_wanda(weight: torch.Tensor, stats: LayerStatistics, config: PruneConfig) -> LayerResult:
    """Prune the smallest ``|W_ij| * ||X_j||_2`` per row."""
    if stats is None or stats.sq_norms is None:
        raise ValueError("Wanda needs the per-feature activation norms of this layer")
    scale = stats.feature_norms().to(weight.device)
    if not torch.isfinite(scale).all():
        raise NonFiniteError("NaN or Inf in the activation norms")
    result = _prune_by_score(weight, scale, config)
    result.info["tokens"] = stats.ntokens
    return result
