"""Pruning methods as pure functions ``(weight, stats, config) -> LayerResult``.

``weight`` is the layer's (out x in) matrix in any dtype and on any device; nothing is modified in place.
Each method returns the new weight in the input's dtype and the boolean keep-mask (True = kept).
"""

from collections.abc import Callable

from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods.admm import ADMMResult, admm_refine, admm_update
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


def statistics_for(method: str, in_features: int, hessian: bool = False) -> LayerStatistics | None:
    """The accumulator a method needs, or None when it needs no activations (magnitude).

    ``hessian=True`` adds ``X^T X`` whatever the method (the ADMM update needs it after any mask).
    """
    if method == "magnitude" and not hessian:
        return None
    return LayerStatistics(
        in_features, want_norms=method == "wanda", want_hessian=method == "sparsegpt" or hessian
    )


__all__ = [
    "ADMMResult",
    "METHODS",
    "HessianError",
    "HessianFactor",
    "LayerResult",
    "PruneConfig",
    "admm_refine",
    "admm_update",
    "check_prunable",
    "inverse_hessian_factor",
    "prune_magnitude",
    "prune_sparsegpt",
    "prune_wanda",
    "statistics_for",
]
