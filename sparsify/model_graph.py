"""Finding a model's decoder blocks and the layers inside them, without per-architecture code.

Blocks are the children of the ``nn.ModuleList`` whose entries belong to the model's
``_no_split_modules`` classes (the unit Hugging Face itself keeps on one device), or, failing that, the
longest ``ModuleList`` of identical modules that contain linear layers. Prunable layers are
``nn.Linear`` and GPT-2's ``Conv1D`` (which stores its weight transposed, in x out).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

try:  # transformers' GPT-2 style layer: y = x @ W + b with W stored (in, out)
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a dependency; kept import-safe all the same
    Conv1D = ()  # type: ignore[assignment,misc]


class NoDecoderBlocksError(ValueError):
    """The model has no recognisable stack of decoder blocks."""


@dataclass(frozen=True)
class DecoderStack:
    """The decoder blocks of a model and where they sit (``model.layers``, ``transformer.h``, ...)."""

    path: str
    blocks: nn.ModuleList

    def block_name(self, index: int) -> str:
        return f"{self.path}.{index}"


def is_prunable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (bool(Conv1D) and isinstance(module, Conv1D))


def _has_linear(module: nn.Module) -> bool:
    return any(is_prunable(m) for m in module.modules())


def find_decoder_stack(model: nn.Module) -> DecoderStack:
    """Locate the decoder blocks; raise :class:`NoDecoderBlocksError` with what was found otherwise."""
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    candidates: list[tuple[str, nn.ModuleList]] = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    by_class = [
        (name, mlist)
        for name, mlist in candidates
        if no_split and all(type(child).__name__ in no_split for child in mlist)
    ]
    homogeneous = [
        (name, mlist)
        for name, mlist in candidates
        if len({type(child) for child in mlist}) == 1 and _has_linear(mlist[0])
    ]
    chosen = by_class or homogeneous
    if not chosen:
        kinds = sorted({type(m).__name__ for _, m in model.named_children()})
        raise NoDecoderBlocksError(
            f"{type(model).__name__} has no stack of decoder blocks (no ModuleList of identical blocks "
            f"containing linear layers; top-level modules: {', '.join(kinds) or 'none'})"
        )
    name, blocks = max(chosen, key=lambda item: len(item[1]))
    return DecoderStack(path=name, blocks=blocks)


def prunable_layers(
    block: nn.Module, prefix: str, targets: Iterable[str] = (), ignore: Iterable[str] = ()
) -> dict[str, nn.Module]:
    """Linear / Conv1D layers of ``block`` by full name (``prefix.sub.name``), filtered by regexes.

    A layer is kept when it matches any ``targets`` expression (all layers when there are none) and no
    ``ignore`` expression; expressions are searched (``re.search``) in the full name.
    """
    targets, ignore = tuple(targets), tuple(ignore)
    layers: dict[str, nn.Module] = {}
    for sub_name, module in block.named_modules():
        if not sub_name or not is_prunable(module):
            continue
        full = f"{prefix}.{sub_name}"
        if targets and not any(re.search(t, full) for t in targets):
            continue
        if any(re.search(i, full) for i in ignore):
            continue
        layers[full] = module
    return layers


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as (out_features x in_features), a view for Conv1D's transposed storage."""
    return layer.weight.t() if bool(Conv1D) and isinstance(layer, Conv1D) else layer.weight


def set_weight_matrix(layer: nn.Module, matrix: torch.Tensor) -> None:
    """Write an (out x in) matrix back into the layer, in its own layout and dtype."""
    with torch.no_grad():
        weight_matrix(layer).copy_(matrix.to(layer.weight.dtype))
