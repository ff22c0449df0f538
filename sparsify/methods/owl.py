"""Outlier-weighted layer-wise sparsity, OWL (Yin et al., 2024): the math.

A block's *outlier ratio* is the share of its Wanda scores ``|W_ij| * ||X_j||_2`` (all of its pruned layers
together) that exceed ``M`` times their mean. Blocks with more outliers are pruned less: the ratios are
mapped linearly onto a range of width ``2 * lambda``, centred so that the sparsities average exactly to the
target, as in the paper's code (``M = 5``, ``lambda = 0.08`` are its LLaMA settings, and the defaults here).
Every block's sparsity then lies in ``[target - 2 lambda, target + 2 lambda]`` (``+- lambda`` when the
ratios are spread evenly), which :class:`~polysparse.sparsify.config.PruneConfig` keeps inside (0, 1).

Language-aware (``owl-lang``), for a calibration mix: a block's outlier ratio is taken on each language's
tokens alone and the largest counts (:func:`combine_language_ratios`). A mixed-token ratio is diluted where
one language's outlier features are rare in the others, so that language's outliers would weigh less than
its share; the maximum gives every block at least the protection its most outlier-heavy language asks for.
(M-Wanda, Choenni & Titov 2025, arXiv 2505.21171, also makes Wanda's statistics and layer sparsities
language-aware, with per-language activation statistics and cross-lingual correlations; this is the
simpler OWL-side counterpart.) What it changes on Gemma 3 270M's six-language mix: docs/recovery.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Share of all the given scores that exceed ``m`` times their mean."""
    flat = torch.cat([s.detach().float().reshape(-1) for s in scores])
    if flat.numel() == 0:
        raise ValueError("no scores to take an outlier ratio of")
    return (flat > m * flat.mean()).float().mean().item()


def wanda_scores(weight: torch.Tensor, feature_norms: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * ||X_j||_2`` for an (out x in) weight."""
    return weight.detach().float().abs() * feature_norms.to(weight.device).float().reshape(1, -1)


def owl_sparsities(ratios: Sequence[float], target: float, lam: float) -> list[float]:
    """Per-block sparsities from outlier ratios; their mean is ``target`` (up to float rounding)."""
    if not ratios:
        return []
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lambda must lie strictly between 0 and 1, got {lam}")
    r = torch.tensor(list(ratios), dtype=torch.float64)
    spread = (r.max() - r.min()).item()
    if spread == 0.0:
        return [float(target)] * len(ratios)
    scaled = (r - r.min()) / spread * (2.0 * lam)
    keep = scaled - scaled.mean() + (1.0 - target)
    return (1.0 - keep).tolist()


def combine_language_ratios(by_language: dict[str, Sequence[float]]) -> list[float]:
    """Per block, the largest outlier ratio over the calibration languages (each a list over blocks)."""
    if not by_language:
        raise ValueError("no languages to combine outlier ratios of")
    lengths = {len(ratios) for ratios in by_language.values()}
    if len(lengths) != 1:
        raise ValueError(f"languages have outlier ratios for different numbers of blocks: {sorted(lengths)}")
    return [max(block) for block in zip(*by_language.values())]
