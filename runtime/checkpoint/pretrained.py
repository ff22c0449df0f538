"""A compressed folder through transformers' own ``from_pretrained`` and ``save_pretrained``.

The steps :class:`~polysparse.runtime.hf_quantizer.PolysparseHfQuantizer` runs inside ``from_pretrained``:

1. :func:`weights_file`: the file transformers is to load (``config.transformers_weights``), from the folder's
   ``sparsity_config`` manifest;
2. :func:`prepare_shells`: before any tensor is read, the checks of :func:`load_sparse` (manifest sizes and
   sha256, safetensors headers, every declared layer's tensors, every other tensor the model expects),
   then each declared layer becomes a :class:`Sparse24Linear` whose ``values`` / ``meta`` / ``bias`` have
   the shapes the file stores, so transformers' loader copies them in as they are (values cast to the
   requested dtype);
3. :func:`finish_sparse_layers`: the stored metadata checked and turned into the layers' aligned view, tied
   tensors tied, and ``model.save_pretrained`` bound to :func:`save_pretrained_compressed`, which writes the
   compressed layout (transformers' own would write a ``model.safetensors`` that a plain load reads with the
   sparse layers missing).
"""

from __future__ import annotations

import os
import re
import shutil
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polysparse.runtime.checkpoint.errors import CheckpointError, CheckpointMismatchError, NotSparse24Error
from polysparse.runtime.checkpoint.load import (
    check_model_keys,
    inspect_files,
    native_meta,
    sparsity_block,
    swap_in_shells,
)
from polysparse.runtime.checkpoint.metadata import FORMAT_DENSE, FORMAT_NATIVE, FORMAT_VERSION
from polysparse.runtime.checkpoint.save import save_sparse
from polysparse.runtime.swap import sparse_layers

# Files of a dense model that would make a plain from_pretrained load dense weights from a folder that now
# holds a compressed model: removed when a compressed model is saved into it.
_DENSE_WEIGHTS = re.compile(r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?")


def _block(config, where: str) -> dict[str, Any]:
    block = sparsity_block(Path(where), {"sparsity_config": getattr(config, "sparsity_config", None)})
    if block["format"] != FORMAT_NATIVE:
        kind = (
            "a dense export: a plain Hugging Face folder, loaded without quantization_config "
            "(polysparse.runtime.sparsify_model swaps its 2:4 layers)"
            if block["format"] == FORMAT_DENSE
            else "a compressed-tensors export (compressed-tensors 0.14 or polysparse.runtime.load_sparse)"
        )
        raise CheckpointError(f"{where} is {kind}, not a folder that polysparse's quantizer loads")
    return block


def weights_file(config) -> str:
    """The one weight file of the compressed folder ``config`` was read from."""
    where = getattr(config, "_name_or_path", None) or "the folder"
    files = _block(config, where).get("files")
    if not isinstance(files, dict) or len(files) != 1:
        raise CheckpointMismatchError(f"{where}: sparsity_config must list one weight file, got {files!r}")
    return next(iter(files))


def prepare_shells(model: nn.Module, checkpoint_files: list[str] | None) -> None:
    """Check the folder without reading tensor data, then swap the declared layers for shells."""
    if not checkpoint_files or len(checkpoint_files) != 1:
        raise CheckpointError(
            f"a compressed folder has one weight file; transformers found {checkpoint_files}"
        )
    path = Path(checkpoint_files[0])
    block = _block(model.config, str(path.parent))
    if path.name not in block["files"]:
        raise CheckpointMismatchError(f"{path}: sparsity_config lists {list(block['files'])}, not this file")
    stored = inspect_files(path.parent, block, verify=True)
    swap_in_shells(model, block["layers"], stored_version=block.get("format_version", FORMAT_VERSION))
    check_model_keys(model, block, stored)
    for layer in sparse_layers(model).values():
        # transformers initialises every module after loading, skipping tensors it loaded; some models'
        # initialisers reach into a child's ``.weight`` (GPT-2's c_proj), which a sparse layer does not have.
        # A meta tensor marked loaded stands in until finish_sparse_layers removes it.
        stand_in = torch.empty(layer.out_features, layer.in_features, device="meta")
        stand_in._is_hf_initialized = True
        layer.weight = stand_in


def finish_sparse_layers(model: nn.Module) -> None:
    """After transformers loaded the stored tensors: the layers' metadata from the stored words (validated),
    the tied tensors, and the compressed ``save_pretrained``."""
    block = _block(model.config, getattr(model.config, "_name_or_path", None) or "the folder")
    version = block.get("format_version", FORMAT_VERSION)
    for name, layer in sparse_layers(model).items():
        if "weight" in vars(layer):  # prepare_shells' stand-in
            del layer.weight
        try:
            layer.meta = native_meta(layer.meta, layer.in_features, version)
        except ValueError as error:
            raise NotSparse24Error(f"layer {name!r} is declared 2:4 but is not: {error}") from None
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        layer.release_caches()
    for alias, target in (block.get("tied") or {}).items():
        source = model.get_parameter(target)
        if model.get_parameter(alias).data_ptr() != source.data_ptr():
            owner, _, leaf = alias.rpartition(".")
            setattr(model.get_submodule(owner), leaf, source)
    # Bound to this model only: a loaded sparse model saves what it holds, the compressed layout.
    model.save_pretrained = types.MethodType(save_pretrained_compressed, model)


def save_pretrained_compressed(
    model: nn.Module,
    save_directory: str | os.PathLike,
    is_main_process: bool = True,
    push_to_hub: bool = False,
    **kwargs: Any,
) -> None:
    """``model.save_pretrained`` of a model loaded through polysparse's quantizer: the compressed layout of
    :func:`save_sparse` written into ``save_directory`` (other files there are kept; dense weight files,
    which a plain ``from_pretrained`` would load instead, are removed)."""
    if push_to_hub:
        raise CheckpointError("push_to_hub: save the folder, then upload it with huggingface_hub")
    ignored = {"max_shard_size", "safe_serialization"}  # one safetensors file, whatever they say
    unsupported = sorted(set(kwargs) - ignored)
    if unsupported:
        raise TypeError(f"save_pretrained of a polysparse model does not take {', '.join(unsupported)}")
    if not is_main_process:
        return
    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target} exists and is not a folder")
    staging = target.parent / f".{target.name}.compressed-{os.getpid()}"
    try:
        save_sparse(model, staging, overwrite=True)
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.iterdir():
            if stale.is_file() and _DENSE_WEIGHTS.fullmatch(stale.name):
                stale.unlink()
        for item in staging.iterdir():
            os.replace(item, target / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
