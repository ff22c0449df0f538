"""Files shared by saving, loading and exporting: hashes, safetensors headers and tensors, side files, the
model config, and the atomic output folder (:func:`polysparse.sparsify.output.atomic_output_folder`)."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from polysparse.runtime.checkpoint.errors import (
    CheckpointError,
    CheckpointExistsError,
    CorruptCheckpointError,
)
from polysparse.sparsify.output import REPORT_FILE, atomic_output_folder
from polysparse.sparsify.streaming import SafetensorsCheckpoint
from polysparse.sparsify.strict_json import write_json

# Files copied from a source folder next to the weights: the tokenizer's, and the pruning report.
SIDE_FILES = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab*",
    "merges.txt",
    "*.model",
    "chat_template*",
    REPORT_FILE,
)

_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(functools.partial(handle.read, 1 << 22), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]


_SIZE_ERRORS = ("incomplete metadata", "MetadataIncompleteBuffer", "too small", "TooSmall")
_SPAN_ERRORS = ("invalid shape, data type, or offset", "TensorInvalidInfo", "InvalidOffset")


def _header_error(path: Path, error: Exception) -> CorruptCheckpointError:
    """Say in the project's words what safetensors found wrong with a header (its messages changed across
    releases: 0.4 names the error kind, 0.5+ describes it)."""
    text = str(error)
    if any(kind in text for kind in _SIZE_ERRORS):
        size = path.stat().st_size
        return CorruptCheckpointError(
            f"{path}: {size} bytes do not match its safetensors header (truncated or extended): {text}"
        )
    if any(kind in text for kind in _SPAN_ERRORS):
        return CorruptCheckpointError(
            f"{path}: a tensor's data spans bytes that do not fit its dtype and shape: {text}"
        )
    return CorruptCheckpointError(f"{path}: unreadable safetensors header ({text})")


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of a safetensors file; no tensor data is read.

    safetensors checks the header against the file (valid JSON, every tensor's bytes matching its dtype and
    shape, the data covering the file exactly) before it returns a handle.
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118 - not a mapping
            entries = {name: (piece.get_dtype(), piece.get_shape()) for name, piece in slices.items()}
    except SafetensorError as error:
        raise _header_error(path, error) from None
    infos = {}
    for name, (dtype_name, shape) in entries.items():
        if dtype_name not in _ST_DTYPES:
            raise CorruptCheckpointError(
                f"{path}: {name!r} has dtype {dtype_name}, which polysparse does not store"
            )
        infos[name] = TensorInfo(_ST_DTYPES[dtype_name], tuple(int(size) for size in shape))
    return infos


def copy_side_files(source: Path | None, target: Path) -> None:
    if source is None or not source.is_dir():
        return
    for pattern in SIDE_FILES:
        for item in source.glob(pattern):
            if item.is_file() and not (target / item.name).exists():
                shutil.copy2(item, target / item.name)


def atomic_folder(out: Path, overwrite: bool) -> AbstractContextManager[Path]:
    """A temporary sibling folder to fill, renamed to ``out`` only when the ``with`` block finishes."""
    if out.exists() and not overwrite:
        raise CheckpointExistsError(
            f"{out} exists; choose another output or pass overwrite=True (--overwrite on the command line)"
        )
    if out.exists() and not out.is_dir():
        raise CheckpointExistsError(f"{out} exists and is not a folder")
    return atomic_output_folder(out, overwrite)


def write_config(
    model: nn.Module,
    folder: Path,
    block: dict[str, Any],
    quantization: dict | None,
    weights_entry: str | None = None,
) -> None:
    """``config.json`` (the model's config, ``sparsity_config`` and ``quantization_config``) and the
    generation config. ``weights_entry``: the ``transformers_weights`` entry, written into the file after
    transformers saved the config (its ``save_pretrained`` drops that key)."""
    config = copy.deepcopy(model.config)
    config.sparsity_config = block
    if quantization is not None:
        config.quantization_config = quantization
    elif hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    if weights_entry is not None:
        path = folder / "config.json"
        entries = json.loads(path.read_text(encoding="utf-8"))
        entries["transformers_weights"] = weights_entry
        write_json(path, entries, sort_keys=True)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(folder)


def dedup_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors to write (contiguous, CPU) and aliases (a name whose tensor is another name's, e.g. tied)."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
    return tensors, aliases


def write_weights(tmp: Path, name: str, tensors: dict[str, torch.Tensor], fmt: str) -> dict[str, Any]:
    path = tmp / name
    save_file(tensors, str(path), metadata={"format": "pt", "polysparse_format": fmt})
    return {name: file_digest(path)}


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{path.parent} has no {path.name}; is it a model folder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptCheckpointError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(data, dict):
        raise CorruptCheckpointError(f"{path} is not a JSON object")
    return data


def read_tensors(folder: Path, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors files ``names`` in ``folder``."""
    try:
        files = SafetensorsCheckpoint.of_files([folder / name for name in names])
        return files.read(sorted(files.keys()))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CorruptCheckpointError(f"{folder}: cannot read tensors: {error}") from error
