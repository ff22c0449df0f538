"""Calibration activations for the method tests: a few large-magnitude features, as in real LLMs."""

import torch

from polysparse.sparsify.stats import LayerStatistics

SHAPES = [(16, 32), (7, 24), (33, 64), (5, 136)]


def calibration(rows_in: int, seed: int, batches: int = 3, seq: int = 20, outliers: bool = True):
    """Activation batches (batch, seq, in) with a few large-magnitude features, as in real LLMs."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(rows_in)
    if outliers:
        scale[torch.randperm(rows_in, generator=g)[: max(1, rows_in // 10)]] = 8.0
    return [torch.randn(2, seq, rows_in, generator=g) * scale for _ in range(batches)]


def collect(inputs, in_features, norms=False, hessian=False):
    stats = LayerStatistics(in_features, want_norms=norms, want_hessian=hessian)
    for x in inputs:
        stats.add(x)
    return stats
