"""Pruning: calibration text, activation statistics, the methods, the sequential driver, evaluation.

The public entry point is :func:`prune_model` with a :class:`PruneConfig` and calibration
:class:`TokenWindows`. Names are imported on first use, so ``polysparse.sparsify.corpora`` (pure Python)
can be used without loading torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ConfigError": "config",
    "NMPattern": "config",
    "PruneConfig": "config",
    "NoDecoderBlocksError": "model_graph",
    "find_decoder_stack": "model_graph",
    "PruneReport": "driver",
    "prune_model": "driver",
    "sequential_blocks": "driver",
    "TokenWindows": "calibration",
    "windows_from_documents": "calibration",
    "windows_from_texts": "calibration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"polysparse.sparsify.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'polysparse.sparsify' has no attribute {name!r}")
