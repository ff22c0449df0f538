"""Saving a model whose 2:4 layers are :class:`~polysparse.runtime.linear.Sparse24Linear` compressed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from polysparse.kernels import padded_meta_storage
from polysparse.runtime.checkpoint.errors import CheckpointError
from polysparse.runtime.checkpoint.files import (
    atomic_folder,
    copy_side_files,
    dedup_state,
    write_config,
    write_weights,
)
from polysparse.runtime.checkpoint.metadata import (
    FORMAT_NATIVE,
    FORMAT_VERSION,
    NATIVE_WEIGHTS,
    SparsityMetadata,
    resolve_metadata,
)
from polysparse.runtime.linear import Sparse24Linear
from polysparse.runtime.swap import sparse_layers


def layer_entries(layers: Mapping[str, Sparse24Linear]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "layout": layer.layout,
            "bias": layer.bias is not None,
        }
        for name, layer in layers.items()
    }


def _transformers_entries() -> tuple[dict[str, Any], str]:
    """The ``quantization_config`` that makes transformers load the folder through polysparse's quantizer,
    and the ``transformers_weights`` entry that makes it refuse the folder without polysparse."""
    # Imported here: the quantizer module imports transformers' quantizers (seconds), which a model being
    # saved has loaded already.
    from polysparse.runtime.hf_quantizer import PLAIN_LOAD_REFUSAL, QUANT_METHOD

    return {"quant_method": QUANT_METHOD, "format": FORMAT_NATIVE}, PLAIN_LOAD_REFUSAL


def save_sparse(
    model: nn.Module,
    out_dir: str | Path,
    *,
    tokenizer=None,
    source: str | Path | None = None,
    metadata: SparsityMetadata | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (with :class:`Sparse24Linear` layers, see :func:`sparsify_model`) compressed.

    ``source``: the folder the model came from (its ``polysparse.json`` gives the provenance and its
    tokenizer files are copied when no ``tokenizer`` is given). ``metadata`` overrides the provenance.
    Written to a temporary sibling folder and renamed: an interrupted save leaves no partial ``out_dir``.
    """
    layers = sparse_layers(model)
    if not layers:
        raise CheckpointError(
            "the model has no Sparse24Linear layers: swap them in with sparsify_model first"
        )
    provenance = resolve_metadata(model, metadata, source)
    tensors, aliases = dedup_state(model.state_dict())
    for name in layers:  # format version 2: metadata rows padded to 16 bytes
        tensors[f"{name}.meta"] = padded_meta_storage(tensors[f"{name}.meta"])
    block = {
        "format": FORMAT_NATIVE,
        "format_version": FORMAT_VERSION,
        **provenance.to_block(),
        "layers": layer_entries(layers),
        "tied": aliases,
    }
    out = Path(out_dir)
    with atomic_folder(out, overwrite) as tmp:
        block["files"] = write_weights(tmp, NATIVE_WEIGHTS, tensors, FORMAT_NATIVE)
        write_config(model, tmp, block, *_transformers_entries())
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        copy_side_files(Path(source) if source is not None else None, tmp)
    return out
