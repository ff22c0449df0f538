"""Tiny models with 2:4 (or unstructured) zeros written into their block weights, for runtime tests.

Magnitude pruning through the kernels' reference (``prune_and_compress_24_reference``), so that the runtime
tests need nothing from ``polysparse.sparsify``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from helpers.tiny_models import tiny_model
from polysparse.kernels.sparse24 import decompress_24_reference, prune_and_compress_24_reference


def _block_linears(model: nn.Module, pattern: str):
    from transformers.pytorch_utils import Conv1D

    out = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, Conv1D)) and module is not out and re.search(pattern, name):
            yield name, module


@torch.no_grad()
def prune_24_(model: nn.Module, pattern: str = r"layers\.|\.h\.") -> list[str]:
    """Zero the two smallest of every four weights along in_features in every matching linear layer."""
    names = []
    for name, module in _block_linears(model, pattern):
        conv = type(module).__name__ == "Conv1D"
        weight = module.weight.t() if conv else module.weight
        if weight.shape[1] % 4:
            continue
        pruned = decompress_24_reference(*prune_and_compress_24_reference(weight.float().contiguous()))
        weight.copy_(pruned.to(weight.dtype))
        names.append(name)
    return names


@torch.no_grad()
def prune_unstructured_(module: nn.Module, sparsity: float = 0.5) -> None:
    """Zero the smallest ``sparsity`` of each row (not 2:4 in general)."""
    weight = module.weight
    k = int(weight.shape[1] * sparsity)
    idx = weight.abs().argsort(dim=1)[:, :k]
    weight.scatter_(1, idx, 0.0)


def sparse_tiny_model(arch: str, dtype: torch.dtype = torch.float32, seed: int = 0, **overrides):
    model = tiny_model(arch, seed=seed, dtype=dtype, **overrides)
    prune_24_(model)
    return model


def token_ids(batch: int = 2, length: int = 9, seed: int = 0) -> torch.Tensor:
    """Random token ids of the tiny vocabulary, BOS first."""
    g = torch.Generator().manual_seed(seed)
    out = torch.randint(3, 320, (batch, length), generator=g)
    out[:, 0] = 1
    return out
