"""Exporting a sparse checkpoint for other engines: ``dense`` (zeros written out), ``compressed`` (this
package's own layout) or ``compressed-tensors`` (``sparse-24-bitmask``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from polysparse.kernels import to_sparse24_bitmask
from polysparse.runtime.checkpoint.errors import CheckpointError
from polysparse.runtime.checkpoint.files import (
    atomic_folder,
    copy_side_files,
    dedup_state,
    write_config,
    write_weights,
)
from polysparse.runtime.checkpoint.load import load_sparse, read_sparsity_config
from polysparse.runtime.checkpoint.metadata import (
    EXPORT_FORMATS,
    FORMAT_BITMASK,
    FORMAT_DENSE,
    FORMAT_VERSION,
    HF_WEIGHTS,
    SparsityMetadata,
)
from polysparse.runtime.checkpoint.save import layer_entries, save_sparse
from polysparse.runtime.linear import Sparse24Linear
from polysparse.runtime.swap import sparse_layers
from polysparse.sparsify.config import SPARSE24
from polysparse.sparsify.output import OutputLocationError, check_not_input


def _dense_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    state = {}
    layers = sparse_layers(model)
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in layers and leaf in ("values", "meta"):
            if leaf == "values":
                layer = layers[prefix]
                weight = layer.dense_weight()
                state[f"{prefix}.weight"] = weight.t() if layer.layout == "conv1d" else weight
            continue
        state[key] = tensor
    return dedup_state(state)


def _bitmask_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    layers = sparse_layers(model)
    conv = [name for name, layer in layers.items() if layer.layout == "conv1d"]
    if conv:
        raise CheckpointError(
            f"compressed-tensors' sparse-24-bitmask stores Linear layers; {conv[0]} (and {len(conv) - 1} "
            "more) are GPT-2 Conv1D layers: export them with format='dense'"
        )
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in layers and leaf in ("values", "meta"):
            if leaf == "values":
                layer = layers[prefix]
                compressed, bitmask, shape = to_sparse24_bitmask(layer.values, layer.meta)
                state[f"{prefix}.compressed"] = compressed
                state[f"{prefix}.bitmask"] = bitmask
                # compressed-tensors writes torch.tensor(shape).reshape(-1, 1)
                state[f"{prefix}.shape"] = torch.tensor(shape).reshape(-1, 1)
            continue
        state[key] = tensor
    return dedup_state(state)


def _global_sparsity(model: nn.Module) -> float:
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, Sparse24Linear):
            weight = module.dense_weight()
        elif isinstance(module, nn.Linear):
            weight = module.weight
        else:
            continue
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else 0.0


def export(
    src: str | Path,
    out: str | Path,
    format: str = "compressed",
    *,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Write the sparse checkpoint ``src`` as ``dense`` (zeros written out, any engine), ``compressed`` (this
    module's own layout) or ``compressed-tensors`` (``sparse-24-bitmask``). Side files are copied."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    src, out = Path(src), Path(out)
    try:
        check_not_input(out, [src], "out")
    except OutputLocationError as error:
        raise CheckpointError(str(error)) from None
    model = load_sparse(src, verify=verify)
    block = read_sparsity_config(src)
    if format == "compressed":
        return save_sparse(
            model, out, source=src, metadata=SparsityMetadata.from_config_block(block), overwrite=overwrite
        )
    layers = sparse_layers(model)
    meta_block = {
        **SparsityMetadata.from_config_block(block).to_block(),
        "layers": layer_entries(layers),
    }
    quantization = None
    if format == "dense":
        tensors, aliases = _dense_state(model)
        fmt, weights_file = FORMAT_DENSE, HF_WEIGHTS
    else:
        tensors, aliases = _bitmask_state(model)
        fmt, weights_file = FORMAT_BITMASK, HF_WEIGHTS
        quantization = {
            "quant_method": "compressed-tensors",
            "sparsity_config": {
                "format": FORMAT_BITMASK,
                "sparsity_structure": str(SPARSE24),
                "global_sparsity": _global_sparsity(model),
                "targets": sorted(layers),
                "ignore": [],
                "registry_requires_subclass": False,
            },
        }
    with atomic_folder(out, overwrite) as tmp:
        files = write_weights(tmp, weights_file, tensors, fmt)
        block_out = {
            "format": fmt,
            "format_version": FORMAT_VERSION,
            **meta_block,
            "tied": aliases,
            "files": files,
        }
        write_config(model, tmp, block_out, quantization)
        copy_side_files(src, tmp)
    return out
