"""Non-uniform sparsity across blocks: the calibration pass that measures each block's outlier ratio.

OWL (Yin et al., 2024) walks the *dense* model over the calibration windows once, before anything is
pruned, takes every block's Wanda scores and their outlier ratio, and maps the ratios to per-block
sparsities that average to the target (the math is in :mod:`polysparse.sparsify.methods.owl`). The pass
costs one forward of every block over the windows, as much as a Wanda statistics pass.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from polysparse.sparsify import distributed
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.hooks import attach_statistics
from polysparse.sparsify.methods.owl import outlier_ratio, owl_sparsities, wanda_scores
from polysparse.sparsify.model_graph import prunable_layers, weight_matrix
from polysparse.sparsify.walk import sequential_blocks


def owl_profile(
    model: nn.Module,
    config: PruneConfig,
    windows: TokenWindows,
    *,
    progress: bool = True,
    block_loader: Any = None,
) -> dict[str, Any]:
    """Outlier ratio and sparsity of every decoder block of the dense ``model`` (not modified)."""
    ratios: list[float] = []
    _, world = distributed.rank_and_world()
    steps = sequential_blocks(
        model,
        windows,
        device=config.device,
        batch_size=config.batch_size,
        progress=progress,
        description="OWL outlier ratios",
        block_loader=block_loader,
        offload=config.offload,
        offload_dtype=config.offload_dtype,
        offload_dir=config.offload_dir,
    )
    for step in steps:
        layers = prunable_layers(step.block, step.name, config.targets, config.ignore)
        stats, select_batch, handles = attach_statistics(step, layers, "wanda")
        try:
            step.forward_batches(before_batch=select_batch)
        finally:
            for handle in handles:
                handle.remove()
        if world > 1:
            distributed.all_reduce_statistics(stats, step.device)
        scores = [
            wanda_scores(weight_matrix(layer).to(step.device), stats[name].feature_norms())
            for name, layer in layers.items()
        ]
        ratios.append(outlier_ratio(scores, config.owl_m) if scores else 0.0)
    sparsities = owl_sparsities(ratios, config.target_sparsity, config.owl_lambda)
    return {
        "name": "owl",
        "m": config.owl_m,
        "lambda": config.owl_lambda,
        "outlier_ratio": ratios,
        "block_sparsity": sparsities,
    }
