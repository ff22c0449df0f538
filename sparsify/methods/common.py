"""What every method returns, and the checks every method makes first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.stats import NonFiniteError


@dataclass
class LayerResult:
    """A pruned layer: new (out x in) weight in the input dtype, keep-mask, and what the method measured."""

    weight: torch.Tensor
    keep: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.keep.float().mean().item()


def check_prunable(weight: torch.Tensor, config: PruneConfig) -> None:
    """Raise a clear error when ``weight`` cannot take the configured pattern or is not finite."""
    if weight.dim() != 2:
        raise ValueError(f"expected an (out x in) weight matrix, got shape {tuple(weight.shape)}")
    misfit = config.pattern.misfit(weight.shape[1]) if config.pattern is not None else None
    if misfit is not None:
        raise ValueError(f"{misfit} for pattern {config.pattern}")
    if not torch.isfinite(weight).all():
        raise NonFiniteError("NaN or Inf in the weight")


def prune_count(in_features: int, sparsity: float) -> int:
    """Weights pruned per row for unstructured sparsity: ``floor(sparsity * in_features)``."""
    return int(sparsity * in_features)
