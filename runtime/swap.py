"""Swapping the 2:4 linear layers of any Hugging Face model for :class:`Sparse24Linear`, and back.

:func:`sparsify_model` walks ``model.named_modules()`` (no per-architecture code): every ``nn.Linear`` and
GPT-2-style ``Conv1D`` whose weight *is* 2:4 along ``in_features`` (checked on the values: at most two
nonzeros in every group of four) is replaced in place; everything else stays as it is, with the reason in
the report. Embeddings and the output projection (``lm_head``, often tied to the input embedding) are never
touched: they are not pruned, and replacing a tied weight would silently untie it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from polysparse.runtime.linear import (
    DEFAULT_DISPATCH,
    Backend,
    DispatchTable,
    Sparse24Linear,
    check_backend,
    module_layout,
)

UNSTRUCTURED_REASON = (
    "unstructured sparsity ({sparsity:.1%} zeros, some groups of four hold 3-4 nonzeros): kept dense, "
    "there is no speedup at ~50% unstructured sparsity on today's kernels"
)


@dataclass(frozen=True)
class SwappedLayer:
    name: str
    in_features: int
    out_features: int
    dtype: str
    layout: str
    dense_bytes: int
    sparse_bytes: int


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    reason: str
    in_features: int | None = None
    out_features: int | None = None
    sparsity: float | None = None


@dataclass(frozen=True)
class SwapReport:
    """What :func:`sparsify_model` did. Bytes count parameters and persistent buffers, shared ones once."""

    backend: str
    swapped: tuple[SwappedLayer, ...] = ()
    skipped: tuple[SkippedLayer, ...] = ()
    model_bytes_before: int = 0
    model_bytes_after: int = 0
    dispatch: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_bytes_before(self) -> int:
        return sum(layer.dense_bytes for layer in self.swapped)

    @property
    def layer_bytes_after(self) -> int:
        return sum(layer.sparse_bytes for layer in self.swapped)

    def summary(self) -> str:
        before, after = self.layer_bytes_before, self.layer_bytes_after
        ratio = f" ({after / before:.1%} of their dense bytes)" if before else ""
        return (
            f"swapped {len(self.swapped)} layers for 2:4 sparse ones{ratio}, kept {len(self.skipped)} dense; "
            f"model {self.model_bytes_before / 2**20:.1f} MiB -> {self.model_bytes_after / 2**20:.1f} MiB"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "dispatch": self.dispatch,
            "layers_swapped": len(self.swapped),
            "layers_skipped": len(self.skipped),
            "layer_bytes_before": self.layer_bytes_before,
            "layer_bytes_after": self.layer_bytes_after,
            "model_bytes_before": self.model_bytes_before,
            "model_bytes_after": self.model_bytes_after,
            "swapped": [asdict(layer) for layer in self.swapped],
            "skipped": [asdict(layer) for layer in self.skipped],
        }


# ----------------------------------------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------------------------------------


def is_24(weight: torch.Tensor) -> bool:
    """True when every group of four consecutive weights along dim 1 holds at most two nonzeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    nonzero = (weight.detach() != 0).reshape(weight.shape[0], -1, 4).sum(-1)
    return bool((nonzero <= 2).all())


def model_nbytes(model: nn.Module) -> int:
    """Bytes of every parameter and persistent buffer, storages shared between names counted once."""
    seen: set[tuple[int, torch.device]] = set()
    total = 0
    for tensor in model.state_dict().values():
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.device)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def _tensor_nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _embedding_storages(model: nn.Module) -> set[int]:
    return {
        m.weight.untyped_storage().data_ptr()
        for m in model.modules()
        if isinstance(m, nn.Embedding) and not m.weight.is_meta
    }


def _output_module(model: nn.Module) -> nn.Module | None:
    get = getattr(model, "get_output_embeddings", None)
    if get is None:
        return None
    try:
        return get()
    except (AttributeError, NotImplementedError):
        return None


def _matches(name: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if re.search(pattern, name):
            return pattern
    return None


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def linear_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``nn.Linear`` and ``Conv1D`` modules by name (each module once)."""
    for name, module in model.named_modules():
        try:
            module_layout(module)
        except TypeError:
            continue
        yield name, module


def sparse_layers(model: nn.Module) -> dict[str, Sparse24Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Sparse24Linear)}


def _skip_reason(
    name: str,
    module: nn.Module,
    *,
    output: nn.Module | None,
    embeddings: set[int],
    targets: tuple[str, ...],
    ignore: tuple[str, ...],
) -> tuple[str | None, torch.Tensor | None]:
    """``(reason to keep dense, the (out, in) weight)``."""
    if module is output:
        return "output projection (lm_head) stays dense", None
    weight = module.weight
    if weight.is_meta:
        return "weight is on the meta device (not loaded)", None
    if weight.untyped_storage().data_ptr() in embeddings:
        return "weight is tied to an embedding", None
    if targets and _matches(name, targets) is None:
        return "not matched by targets", None
    pattern = _matches(name, ignore)
    if pattern is not None:
        return f"ignored (matches {pattern!r})", None
    if not weight.is_floating_point():
        return f"weight dtype {weight.dtype} is not floating point", None
    if module_layout(module) == "conv1d":
        weight = weight.t()
    if weight.shape[1] % 4:
        return f"in_features={weight.shape[1]} is not a multiple of 4", weight
    return None, weight


# ----------------------------------------------------------------------------------------------------------
# Swapping
# ----------------------------------------------------------------------------------------------------------


def sparsify_model(
    model: nn.Module,
    backend: Backend = "auto",
    targets: Iterable[str] = (),
    ignore: Iterable[str] = (),
    *,
    dispatch: DispatchTable = DEFAULT_DISPATCH,
    cache_dense: bool | None = None,
) -> SwapReport:
    """Replace, in place, every 2:4 ``nn.Linear`` / ``Conv1D`` by a :class:`Sparse24Linear`.

    ``targets`` / ``ignore``: regular expressions searched in module names (``model.layers.3.mlp.up_proj``);
    with ``targets`` only matching layers are considered. ``backend`` and ``dispatch`` are set on every
    swapped layer (change them later with :func:`set_backend`).
    """
    check_backend(backend)
    targets, ignore = tuple(targets), tuple(ignore)
    for pattern in (*targets, *ignore):
        re.compile(pattern)
    before = model_nbytes(model)
    output = _output_module(model)
    embeddings = _embedding_storages(model)
    swapped: list[SwappedLayer] = []
    skipped: list[SkippedLayer] = []
    for name, module in list(linear_layers(model)):
        reason, weight = _skip_reason(
            name, module, output=output, embeddings=embeddings, targets=targets, ignore=ignore
        )
        shape = {} if weight is None else {"in_features": weight.shape[1], "out_features": weight.shape[0]}
        if reason is None and not is_24(weight):
            sparsity = float((weight == 0).sum()) / max(weight.numel(), 1)
            reason = (
                UNSTRUCTURED_REASON.format(sparsity=sparsity)
                if sparsity > 0
                else "dense (no zeros): not pruned"
            )
            shape["sparsity"] = sparsity
        if reason is not None:
            skipped.append(SkippedLayer(name, reason, **shape))
            continue
        sparse = Sparse24Linear.from_module(
            module, backend=backend, dispatch=dispatch, cache_dense=cache_dense
        )
        swapped.append(
            SwappedLayer(
                name=name,
                in_features=sparse.in_features,
                out_features=sparse.out_features,
                dtype=str(weight.dtype).removeprefix("torch."),
                layout=sparse.layout,
                dense_bytes=_tensor_nbytes(module.weight, module.bias),
                sparse_bytes=sparse.compressed_nbytes(),
            )
        )
        _replace(model, name, sparse)
    return SwapReport(
        backend=backend,
        swapped=tuple(swapped),
        skipped=tuple(skipped),
        model_bytes_before=before,
        model_bytes_after=model_nbytes(model),
        dispatch=dispatch.to_dict(),
    )


def set_backend(
    model: nn.Module,
    backend: Backend,
    *,
    dispatch: DispatchTable | None = None,
    cache_dense: bool | None = None,
) -> int:
    """Set the backend (and optionally the dispatch table / dense caching) of every sparse layer; count."""
    check_backend(backend)
    layers = sparse_layers(model)
    for layer in layers.values():
        layer.backend = backend
        if dispatch is not None:
            layer.dispatch = dispatch
        if cache_dense is not None:
            layer.cache_dense = cache_dense
        layer.release_caches()
    return len(layers)


def densify_model(model: nn.Module) -> int:
    """Replace every :class:`Sparse24Linear` by the equivalent dense-with-zeros module, in place; count."""
    layers = sparse_layers(model)
    for name, layer in layers.items():
        _replace(model, name, layer.to_dense_module())
    return len(layers)
