"""Pruning methods as pure functions ``(weight, stats, config) -> LayerResult``.

``weight`` is the layer's (out x in) matrix in any dtype and on any device; nothing is modified in place.
Each method returns the new weight in the input's dtype and the boolean keep-mask (True = kept).
"""

from collections.abc import Callable

from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods.common import LayerResult, check_prunable
from polysparse.sparsify.methods.score_based import prune_magnitude, prune_wanda
from polysparse.sparsify.methods.sparsegpt import (
    HessianError,
    HessianFactor,
    inverse_hessian_factor,
    prune_sparsegpt,
)
from polysparse.sparsify.stats import LayerStatistics

PruneFunction = Callable[..., LayerResult]

METHODS: dict[str, PruneFunction] = {
    "magnitude": prune_magnitude,
    "wanda": prune_wanda,
    "sparsegpt": prune_sparsegpt,
}


def statistics_for(method: str, in_features: int) -> LayerStatistics | None:
    """The accumulator a method needs, or None when it needs no activations (magnitude)."""
    if method == "magnitude":
        return None
    return LayerStatistics(in_features, want_norms=method == "wanda", want_hessian=method == "sparsegpt")


__all__ = [
    "METHODS",
    "HessianError",
    "HessianFactor",
    "LayerResult",
    "PruneConfig",
    "check_prunable",
    "inverse_hessian_factor",
    "prune_magnitude",
    "prune_sparsegpt",
    "prune_wanda",
    "statistics_for",
]
