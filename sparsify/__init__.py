"""Pruning: calibration text, activation statistics, the methods, the sequential driver, evaluation.

The public entry point is :func:`prune_model` with a :class:`PruneConfig` and calibration
:class:`TokenWindows`.
"""

from polysparse.sparsify.calibration import TokenWindows, windows_from_documents, windows_from_texts
from polysparse.sparsify.config import ConfigError, NMPattern, PruneConfig
from polysparse.sparsify.driver import PruneReport, prune_model, sequential_blocks
from polysparse.sparsify.model_graph import NoDecoderBlocksError, find_decoder_stack

__all__ = [
    "ConfigError",
    "NMPattern",
    "NoDecoderBlocksError",
    "PruneConfig",
    "PruneReport",
    "TokenWindows",
    "find_decoder_stack",
    "prune_model",
    "sequential_blocks",
    "windows_from_documents",
    "windows_from_texts",
]
