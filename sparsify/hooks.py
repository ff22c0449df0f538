"""Forward hooks that feed each layer's inputs, padding masked, into its statistics accumulator.

Used by the pruning driver (:func:`polysparse.sparsify.driver.prune_model`) and by the OWL profile pass
(:mod:`polysparse.sparsify.profiles`), both walking the blocks with
:func:`~polysparse.sparsify.walk.sequential_blocks`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from polysparse.sparsify.methods import statistics_for
from polysparse.sparsify.model_graph import weight_matrix
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError, float16_hint
from polysparse.sparsify.walk import BlockStep

log = logging.getLogger("polysparse.sparsify")


def attach_statistics(
    step: BlockStep,
    layers: dict[str, nn.Module],
    method: str,
    hessian: bool = False,
    token_masks: Sequence[torch.Tensor] | None = None,
) -> tuple[dict[str, LayerStatistics], Callable[[int], None], list[Any]]:
    """Forward hooks that feed each layer's inputs, minus padding, into its accumulator.

    ``hessian=True``: every layer also accumulates ``X^T X`` (the ADMM update needs it after any method).
    ``token_masks`` (one per batch, like ``step.token_masks``) count only some tokens, e.g. one language's.
    """
    masks = step.token_masks if token_masks is None else token_masks
    stats: dict[str, LayerStatistics] = {}
    handles = []
    current: dict[str, torch.Tensor] = {}
    warned: set[str] = set()

    def select_batch(i: int) -> None:
        current["mask"] = masks[i]
        current["shared"] = {}  # layers fed the same tensor in this batch share its sums

    for name, layer in layers.items():
        accumulator = statistics_for(method, weight_matrix(layer).shape[1], hessian=hessian)
        if accumulator is None:
            continue
        stats[name] = accumulator

        def hook(module: nn.Module, inputs: tuple, output: Any, name: str = name) -> None:
            x = inputs[0]
            mask = current.get("mask")
            if mask is not None and mask.numel() == x[..., 0].numel():
                mask = mask.reshape(x.shape[:-1])
            elif mask is not None:
                if name not in warned:
                    log.warning("%s: inputs %s do not line up with tokens; padding not masked", name, x.shape)
                    warned.add(name)
                mask = None
            try:
                stats[name].add(x, mask, shared=current.get("shared"))
            except NonFiniteError as error:
                raise NonFiniteError(f"{name}: {error}{float16_hint(x.dtype)}") from None

        handles.append(layer.register_forward_hook(hook))
    return stats, select_batch, handles
