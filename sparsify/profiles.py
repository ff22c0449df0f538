"""Non-uniform sparsity across blocks: the calibration pass that measures each block's outlier ratio.

OWL (Yin et al., 2024) walks the *dense* model over the calibration windows once, before anything is
pruned, takes every block's Wanda scores and their outlier ratio, and maps the ratios to per-block
sparsities that average to the target (the math is in :mod:`polysparse.sparsify.methods.owl`). The pass
costs one forward of every block over the windows, as much as a Wanda statistics pass.

The language-aware profile (``owl-lang``) makes the same single walk, one block at a time, but hooks every
layer once per calibration language (``TokenWindows.languages``), each counting only its language's tokens:
per block one outlier ratio per language, combined by
:func:`~polysparse.sparsify.methods.owl.combine_language_ratios` (the largest) before OWL's mapping. The
extra cost is one ``sum x^2`` per layer and language per batch; with one language it is plain OWL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from polysparse.sparsify import distributed
from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.hooks import attach_statistics
from polysparse.sparsify.methods.owl import (
    combine_language_ratios,
    outlier_ratio,
    owl_sparsities,
    wanda_scores,
)
from polysparse.sparsify.model_graph import prunable_layers, weight_matrix
from polysparse.sparsify.stats import LayerStatistics
from polysparse.sparsify.walk import sequential_blocks, walk_settings

log = logging.getLogger("polysparse.sparsify")


def language_token_masks(
    token_masks: Sequence[torch.Tensor], languages: Sequence[str], names: Sequence[str]
) -> dict[str, list[torch.Tensor]]:
    """Per language in ``names``, the batches' token masks with every other language's windows masked out.

    ``token_masks`` are the walk's (batch x length) masks in window order; ``languages`` names every window.
    """
    total = sum(mask.shape[0] for mask in token_masks)
    if total != len(languages):
        raise ValueError(f"{len(languages)} window languages for {total} windows in the batches")
    by_language: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    first = 0
    for mask in token_masks:
        rows = languages[first : first + mask.shape[0]]
        first += mask.shape[0]
        for name in names:
            selected = torch.tensor([lang == name for lang in rows], device=mask.device)
            by_language[name].append(mask & selected.reshape(-1, *([1] * (mask.dim() - 1))))
    return by_language


def _select_all(selects: Sequence[Callable[[int], None]], batch: int) -> None:
    for select in selects:
        select(batch)


def owl_profile(
    model: nn.Module,
    config: PruneConfig,
    windows: TokenWindows,
    *,
    progress: bool = True,
    block_loader: Any = None,
) -> dict[str, Any]:
    """Outlier ratio and sparsity of every decoder block of the dense ``model`` (not modified).

    ``config.sparsity_profile`` is ``owl`` (ratios on all calibration tokens) or ``owl-lang`` (per
    language of ``windows.languages``, the largest kept; unlabelled windows count as one language).
    """
    per_language = config.sparsity_profile == "owl-lang"
    languages = windows.languages if windows.languages is not None else ("unlabelled",) * len(windows)
    names = distributed.union_of_names(languages) if per_language else ["all"]
    if per_language and len(names) == 1:
        log.warning(
            "owl-lang: the calibration windows have one language (%s): the profile is plain OWL", names[0]
        )
    ratios: dict[str, list[float]] = {name: [] for name in names}
    _, world = distributed.rank_and_world()
    description = "OWL outlier ratios" + (f" per language ({', '.join(names)})" if per_language else "")
    steps = sequential_blocks(
        model,
        windows,
        progress=progress,
        description=description,
        block_loader=block_loader,
        offload_dir=config.offload_dir,
        **walk_settings(config),
    )
    for step in steps:
        layers = prunable_layers(step.block, step.name, config.targets, config.ignore)
        masks = language_token_masks(step.token_masks, languages, names) if per_language else {"all": None}
        stats: dict[str, dict[str, LayerStatistics]] = {}
        selects: list[Callable[[int], None]] = []
        handles: list[Any] = []
        try:
            for name in names:
                stats[name], select_batch, added = attach_statistics(
                    step, layers, "wanda", token_masks=masks[name]
                )
                selects.append(select_batch)
                handles += added
            step.forward_batches(before_batch=partial(_select_all, selects))
        finally:
            for handle in handles:
                handle.remove()
        for name in names:
            if world > 1:
                distributed.all_reduce_statistics(stats[name], step.device)
            scores = [
                wanda_scores(weight_matrix(layer).to(step.device), stats[name][key].feature_norms())
                for key, layer in layers.items()
                if key in stats[name]
            ]
            ratios[name].append(outlier_ratio(scores, config.owl_m) if scores else 0.0)
    combined = combine_language_ratios(ratios)
    sparsities = owl_sparsities(combined, config.target_sparsity, config.owl_lambda)
    profile = {
        "name": config.sparsity_profile,
        "m": config.owl_m,
        "lambda": config.owl_lambda,
        "outlier_ratio": combined,
        "block_sparsity": sparsities,
    }
    if per_language:
        profile["outlier_ratio_by_language"] = ratios
        profile["windows_by_language"] = {name: languages.count(name) for name in names}
    return profile
