"""Compressed 2:4 checkpoints: save, load without dense weights, export for other engines.

Layout of :func:`save_sparse` (a Hugging Face folder, safetensors only):

* ``config.json``: the model's config plus a ``sparsity_config`` block: ``format``
  (``"polysparse-sparse24"``), ``format_version``, ``pattern`` (``"2:4"``), the pruning ``method``,
  ``sparsity`` and ``calibration`` (spec, language, source) and the ``polysparse_version`` (from the source
  folder's ``polysparse.json`` or given), ``layers`` (name -> in/out features, layout ``linear`` or
  ``conv1d``, bias), ``tied`` (state-dict names that alias another, e.g. ``lm_head.weight``) and ``files``
  (name -> bytes and sha256: the manifest that catches truncated or tampered files).
* ``model.sparse24.safetensors``: every dense tensor under its usual name, and for each sparse layer
  ``<layer>.values`` (``out x in/2``), ``<layer>.meta`` and ``<layer>.bias``. Format version 2 stores the
  int16 metadata with every row padded with zero words to a multiple of 8 (16 bytes: ``out x
  ceil(in/128)*8``), the layout the matmul kernels load as whole 16-byte vectors whatever ``in`` is; version 1
  stored ``out x in/16`` and is still read (padded on load). The file
  is deliberately *not* called ``model.safetensors``: a plain ``from_pretrained`` would find no weight for
  the sparse layers and fill them with random values; this way it refuses to load instead.
* tokenizer files, ``generation_config.json`` and ``polysparse.json`` (the pruning report) when available.

:func:`export` writes the same model as ``dense`` (a standard HF folder with the zeros written out, loadable
by any engine) or ``compressed-tensors`` (``<layer>.compressed`` / ``.bitmask`` / ``.shape`` and a
``quantization_config.sparsity_config`` of format ``sparse-24-bitmask``, as compressed-tensors'
``Sparse24BitMaskCompressor`` writes it). :func:`load_sparse` reads all three layouts back to the identical
model. Every check that can be made without reading tensor data (manifest sizes and hashes, the safetensors
header, names, shapes and dtypes against ``sparsity_config`` and the model built on the meta device) runs
before any data is read; a bad file raises a :class:`CheckpointError` and no model is returned.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import shutil
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from polysparse.kernels import (
    META_ROW_ALIGN,
    aligned_meta,
    check_meta,
    compress_24,
    from_sparse24_bitmask,
    meta_shape,
    padded_meta_storage,
    to_sparse24_bitmask,
)
from polysparse.runtime.linear import DEFAULT_DISPATCH, Backend, DispatchTable, Sparse24Linear, module_layout
from polysparse.runtime.swap import sparse_layers

FORMAT_NATIVE = "polysparse-sparse24"
FORMAT_DENSE = "dense"
FORMAT_BITMASK = "sparse-24-bitmask"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1: metadata rows of ``in/16`` words. Version 2: rows padded to 16 bytes (``padded_meta_shape``)."""
NATIVE_WEIGHTS = "model.sparse24.safetensors"
HF_WEIGHTS = "model.safetensors"
REPORT_FILE = "polysparse.json"
EXPORT_FORMATS = ("dense", "compressed", "compressed-tensors")

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
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


class CheckpointError(ValueError):
    """A sparse checkpoint cannot be read or written."""


class CorruptCheckpointError(CheckpointError):
    """A file is truncated, tampered with (size or sha256 differs from the manifest) or unreadable."""


class CheckpointMismatchError(CheckpointError):
    """The metadata (``sparsity_config``, the model config) does not match the tensors in the files."""


class CheckpointExistsError(CheckpointError, FileExistsError):
    """The output folder exists and overwriting was not asked for."""


class NotSparse24Error(CheckpointError):
    """A tensor declared 2:4 is not: more than two nonzeros in a group, or corrupt position metadata."""


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------


def describe_calibration(spec: str | None) -> dict[str, Any]:
    """``{"spec", "language", "source"}`` from a calibration spec such as ``handbook:de``,
    ``text:notes.txt:de``, ``translate:de->en:gettext,shots=4`` or ``handbook:de=0.5,handbook:en=0.5``."""
    if not spec:
        return {"spec": spec, "language": None, "source": None}
    pieces: list[str] = []
    for piece in spec.split(","):
        if ":" in piece or not pieces:
            pieces.append(piece)
        else:  # an option of the previous component (",shots=4")
            pieces[-1] += "," + piece
    languages, sources = [], []
    for piece in pieces:
        body = piece.split("=", 1)[0] if not piece.startswith("translate:") else piece.split(",", 1)[0]
        name, _, argument = body.partition(":")
        if name == "translate":
            pair, _, parallel = argument.partition(":")
            languages.append(pair)
            sources.append(f"{parallel} (translation prompts)")
        elif name == "text":
            path, _, lang = argument.rpartition(":")
            languages.append(lang if path else None)
            sources.append("text")
        else:
            languages.append(argument or None)
            sources.append(name)
    unique_sources = list(dict.fromkeys(sources))
    known = [lang for lang in languages if lang]
    return {
        "spec": spec,
        "language": "+".join(dict.fromkeys(known)) if known else None,
        "source": "+".join(unique_sources),
    }


@dataclass(frozen=True)
class SparsityMetadata:
    """How the sparse weights came about; written into ``config.json``'s ``sparsity_config``."""

    method: str | None = None
    pattern: str = "2:4"
    sparsity: float | None = None
    calibration_spec: str | None = None
    calibration_language: str | None = None
    calibration_source: str | None = None
    polysparse_version: str | None = None

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> SparsityMetadata:
        """From a ``polysparse.json`` pruning report (``config``, ``calibration``, ``summary``)."""
        config = report.get("config") or {}
        calibration = describe_calibration((report.get("calibration") or {}).get("spec"))
        summary = report.get("summary") or {}
        return cls(
            method=config.get("method"),
            pattern=config.get("pattern") or "2:4",
            sparsity=summary.get("sparsity_of_pruned_layers"),
            calibration_spec=calibration["spec"],
            calibration_language=calibration["language"],
            calibration_source=calibration["source"],
            polysparse_version=report.get("polysparse_version"),
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> SparsityMetadata | None:
        path = Path(folder) / REPORT_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_report(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, AttributeError) as error:
            raise CheckpointError(f"{path} is not a valid polysparse report: {error}") from None

    @classmethod
    def from_config_block(cls, block: Mapping[str, Any]) -> SparsityMetadata:
        calibration = block.get("calibration") or {}
        return cls(
            method=block.get("method"),
            pattern=block.get("pattern", "2:4"),
            sparsity=block.get("sparsity"),
            calibration_spec=calibration.get("spec"),
            calibration_language=calibration.get("language"),
            calibration_source=calibration.get("source"),
            polysparse_version=block.get("polysparse_version"),
        )

    def to_block(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "method": self.method,
            "sparsity": self.sparsity,
            "calibration": {
                "spec": self.calibration_spec,
                "language": self.calibration_language,
                "source": self.calibration_source,
            },
            "polysparse_version": self.polysparse_version or _version(),
        }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polysparse")
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------------------------------------
# Files: hashing, safetensors headers, atomic folders
# ----------------------------------------------------------------------------------------------------------


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


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of a safetensors file, checked against the file's size; no data read."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise CorruptCheckpointError(f"{path}: {size} bytes, too short for a safetensors header")
            (length,) = struct.unpack("<Q", raw)
            if length > size - 8:
                raise CorruptCheckpointError(
                    f"{path}: header claims {length} bytes but the file has {size} (truncated?)"
                )
            header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptCheckpointError(f"{path}: unreadable safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{path}: the safetensors header is not a JSON object")
    infos, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _ST_DTYPES[entry["dtype"]]
            shape = tuple(int(s) for s in entry["shape"])
            begin, stop = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CorruptCheckpointError(f"{path}: malformed header entry for {name!r}: {entry!r}") from None
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if stop - begin != itemsize * int(torch.Size(shape).numel()):
            raise CorruptCheckpointError(f"{path}: {name!r} spans {stop - begin} bytes for shape {shape}")
        infos[name] = TensorInfo(dtype, shape)
        end = max(end, stop)
    if 8 + length + end != size:
        raise CorruptCheckpointError(
            f"{path}: {size} bytes, but its header describes {8 + length + end} (truncated or extended)"
        )
    return infos


def _copy_side_files(source: Path | None, target: Path) -> None:
    if source is None or not source.is_dir():
        return
    for pattern in SIDE_FILES:
        for item in source.glob(pattern):
            if item.is_file() and not (target / item.name).exists():
                shutil.copy2(item, target / item.name)


@contextlib.contextmanager
def _atomic_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder, renamed to ``out`` only when the block finishes."""
    if out.exists() and not overwrite:
        raise CheckpointExistsError(f"{out} exists; choose another output or pass overwrite=True")
    if out.exists() and not out.is_dir():
        raise CheckpointExistsError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_config(model: nn.Module, folder: Path, block: dict[str, Any], quantization: dict | None) -> None:
    config = copy.deepcopy(model.config)
    config.sparsity_config = block
    if quantization is not None:
        config.quantization_config = quantization
    elif hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(folder)


# ----------------------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------------------


def _dedup_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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


def _layer_entries(layers: Mapping[str, Sparse24Linear]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "layout": layer.layout,
            "bias": layer.bias is not None,
        }
        for name, layer in layers.items()
    }


def _resolve_metadata(
    model: nn.Module, metadata: SparsityMetadata | None, source: str | Path | None
) -> SparsityMetadata:
    if metadata is not None:
        return metadata
    if source is not None:
        found = SparsityMetadata.from_folder(source)
        if found is not None:
            return found
    block = getattr(getattr(model, "config", None), "sparsity_config", None)
    if isinstance(block, Mapping):
        return SparsityMetadata.from_config_block(block)
    return SparsityMetadata()


def _write_weights(tmp: Path, name: str, tensors: dict[str, torch.Tensor], fmt: str) -> dict[str, Any]:
    path = tmp / name
    save_file(tensors, str(path), metadata={"format": "pt", "polysparse_format": fmt})
    return {name: file_digest(path)}


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
    provenance = _resolve_metadata(model, metadata, source)
    tensors, aliases = _dedup_state(model.state_dict())
    for name in layers:  # format version 2: metadata rows padded to 16 bytes
        tensors[f"{name}.meta"] = padded_meta_storage(tensors[f"{name}.meta"])
    block = {
        "format": FORMAT_NATIVE,
        "format_version": FORMAT_VERSION,
        **provenance.to_block(),
        "layers": _layer_entries(layers),
        "tied": aliases,
    }
    out = Path(out_dir)
    with _atomic_folder(out, overwrite) as tmp:
        block["files"] = _write_weights(tmp, NATIVE_WEIGHTS, tensors, FORMAT_NATIVE)
        _write_config(model, tmp, block, None)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _copy_side_files(Path(source) if source is not None else None, tmp)
    return out


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules with their parameters on the meta device; buffers stay real.

    Non-persistent buffers (RoPE frequencies, embedding scales) are computed in ``__init__`` and are in no
    checkpoint, so they must be real; parameters are moved to ``meta`` as they are registered, and
    ``nn.Linear`` / ``Conv1D`` run their whole ``__init__`` on ``meta`` so that not even an uninitialised
    dense weight is allocated for a layer that may be sparse.
    """
    from transformers.pytorch_utils import Conv1D

    register = nn.Module.register_parameter
    inits = {cls: cls.__init__ for cls in (nn.Linear, Conv1D)}

    def register_on_meta(module, name, param):
        register(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def on_meta(init):
        @functools.wraps(init)
        def wrapped(self, *args, **kwargs):
            with torch.device("meta"):
                init(self, *args, **kwargs)

        return wrapped

    nn.Module.register_parameter = register_on_meta
    for cls, init in inits.items():
        cls.__init__ = on_meta(init)
    try:
        yield
    finally:
        nn.Module.register_parameter = register
        for cls, init in inits.items():
            cls.__init__ = init


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent} has no {path.name}; is it a model folder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptCheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CorruptCheckpointError(f"{path} is not a JSON object")
    return data


def _sparsity_block(folder: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    block = config.get("sparsity_config")
    if isinstance(block, dict) and block.get("format") in (FORMAT_NATIVE, FORMAT_DENSE, FORMAT_BITMASK):
        version = block.get("format_version", FORMAT_VERSION)
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{folder}: sparsity format version {version}; this polysparse reads "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        if not isinstance(block.get("layers"), dict):
            raise CheckpointMismatchError(f"{folder}: sparsity_config has no 'layers' mapping")
        return block
    raise CheckpointError(
        f"{folder} is not a polysparse sparse checkpoint (config.json has no sparsity_config of format "
        f"{FORMAT_NATIVE}, {FORMAT_DENSE} or {FORMAT_BITMASK}); load a dense folder with from_pretrained "
        "and call sparsify_model"
    )


def _check_files(folder: Path, block: Mapping[str, Any], verify: bool) -> dict[str, dict[str, TensorInfo]]:
    files = block.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointMismatchError(f"{folder}: sparsity_config lists no weight files")
    headers = {}
    for name, expected in files.items():
        if not isinstance(expected, dict):
            raise CheckpointMismatchError(f"{folder}: malformed manifest entry for {name!r}")
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise CorruptCheckpointError(f"{folder}: weight file {name!r} is missing")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise CorruptCheckpointError(
                f"{path}: {size} bytes, the manifest says {expected.get('bytes')} (truncated or replaced)"
            )
        if verify and file_digest(path)["sha256"] != expected.get("sha256"):
            raise CorruptCheckpointError(f"{path}: sha256 differs from the manifest (the file was modified)")
        headers[name] = read_header(path)
    return headers


def _expect(infos: Mapping[str, TensorInfo], key: str, shape: tuple[int, ...], dtype=None) -> TensorInfo:
    info = infos.get(key)
    if info is None:
        raise CheckpointMismatchError(f"tensor {key!r} is declared by sparsity_config but not in the files")
    if info.shape != shape:
        raise CheckpointMismatchError(f"tensor {key!r} has shape {info.shape}, expected {shape}")
    if dtype is not None and info.dtype not in (dtype if isinstance(dtype, tuple) else (dtype,)):
        raise CheckpointMismatchError(f"tensor {key!r} is {info.dtype}, expected {dtype}")
    return info


_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def padded_meta_shape(out_features: int, in_features: int) -> tuple[int, int]:
    """Shape of a layer's stored metadata in format version 2 (rows padded to 16 bytes)."""
    words = meta_shape(out_features, in_features)[1]
    return out_features, -(-words // META_ROW_ALIGN) * META_ROW_ALIGN


def _layer_keys(
    fmt: str,
    name: str,
    entry: Mapping[str, Any],
    infos: Mapping[str, TensorInfo],
    version: int = FORMAT_VERSION,
) -> set[str]:
    """Validate the stored tensors of one declared layer (names, shapes, dtypes); return their names."""
    try:
        out_f, in_f = int(entry["out_features"]), int(entry["in_features"])
        layout = entry.get("layout", "linear")
    except (KeyError, TypeError, ValueError):
        raise CheckpointMismatchError(f"layer {name!r}: malformed sparsity_config entry {entry!r}") from None
    if in_f % 4 or in_f <= 0 or out_f <= 0 or layout not in ("linear", "conv1d"):
        raise CheckpointMismatchError(f"layer {name!r}: invalid entry {entry!r} for a 2:4 layer")
    keys = set()
    if fmt == FORMAT_NATIVE:
        values = _expect(infos, f"{name}.values", (out_f, in_f // 2), _FLOATS)
        stored_meta = meta_shape(out_f, in_f) if version == 1 else padded_meta_shape(out_f, in_f)
        _expect(infos, f"{name}.meta", stored_meta, torch.int16)
        keys |= {f"{name}.values", f"{name}.meta"}
        dtype = values.dtype
    elif fmt == FORMAT_BITMASK:
        if layout != "linear":
            raise CheckpointMismatchError(f"layer {name!r}: sparse-24-bitmask stores Linear layers only")
        values = _expect(infos, f"{name}.compressed", (out_f, in_f // 2), _FLOATS)
        _expect(infos, f"{name}.bitmask", (out_f, -(-in_f // 8)), torch.uint8)
        shape = infos.get(f"{name}.shape")
        if (
            shape is None
            or shape.dtype not in (torch.int64, torch.int32)
            or int(torch.Size(shape.shape).numel()) != 2
        ):
            raise CheckpointMismatchError(f"layer {name!r}: missing or malformed {name}.shape tensor")
        keys |= {f"{name}.compressed", f"{name}.bitmask", f"{name}.shape"}
        dtype = values.dtype
    else:
        dense_shape = (in_f, out_f) if layout == "conv1d" else (out_f, in_f)
        dtype = _expect(infos, f"{name}.weight", dense_shape, _FLOATS).dtype
        keys.add(f"{name}.weight")
    if entry.get("bias"):
        _expect(infos, f"{name}.bias", (out_f,), dtype)
        keys.add(f"{name}.bias")
    return keys


def _build_skeleton(folder: Path, layers: Mapping[str, Mapping[str, Any]], **module_kwargs: Any) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{folder}: cannot read the model config: {error}") from error
    if hasattr(config, "quantization_config"):
        # Only the sparsity part exists here, which this loader handles itself.
        del config.quantization_config
    try:
        with empty_weights():
            model = AutoModelForCausalLM.from_config(config)
    except Exception as error:  # transformers raises KeyError, ValueError, TypeError... on a bad config
        raise CheckpointMismatchError(
            f"{folder}: config.json describes a model transformers cannot build "
            f"({type(error).__name__}: {error})"
        ) from error
    for name, entry in layers.items():
        try:
            module = model.get_submodule(name)
            layout = module_layout(module)
        except (AttributeError, TypeError):
            raise CheckpointMismatchError(
                f"layer {name!r} of sparsity_config is not a Linear/Conv1D of this {config.model_type} model"
            ) from None
        weight_shape = tuple(module.weight.shape)
        out_f, in_f = int(entry["out_features"]), int(entry["in_features"])
        expected = (in_f, out_f) if layout == "conv1d" else (out_f, in_f)
        if (
            layout != entry.get("layout", "linear")
            or weight_shape != expected
            or bool(entry.get("bias")) != (module.bias is not None)
        ):
            raise CheckpointMismatchError(
                f"layer {name!r}: the model has a {layout} weight of shape {weight_shape} "
                f"(bias: {module.bias is not None}), sparsity_config declares "
                f"{entry.get('layout', 'linear')} {out_f} x {in_f} (bias: {bool(entry.get('bias'))})"
            )
        shell = Sparse24Linear(
            torch.empty(out_f, in_f // 2, device="meta"),
            torch.empty(meta_shape(out_f, in_f), dtype=torch.int16, device="meta"),
            torch.empty(out_f, device="meta") if module.bias is not None else None,
            layout=layout,
            **module_kwargs,
        )
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, shell)
    return model


def _check_keys(
    model: nn.Module, block: Mapping[str, Any], stored: Mapping[str, TensorInfo], layer_keys: set[str]
):
    """Every non-sparse tensor the model expects is stored with the same shape; nothing else is stored."""
    aliases = dict(block.get("tied") or {})
    expected = {}
    for name, tensor in model.state_dict().items():
        if name in aliases:
            continue
        expected[name] = tuple(tensor.shape)
    layer_prefixes = tuple(f"{name}." for name in block["layers"])
    missing = [k for k in expected if k not in stored and not k.startswith(layer_prefixes)]
    unexpected = [k for k in stored if k not in expected and k not in layer_keys]
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"the files do not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, shape in expected.items():
        if key in stored and key not in layer_keys and stored[key].shape != shape:
            raise CheckpointMismatchError(
                f"tensor {key!r} has shape {stored[key].shape}, the model expects {shape}"
            )
    for alias, target in aliases.items():
        if target not in stored:
            raise CheckpointMismatchError(f"tied tensor {alias!r} points at {target!r}, which is not stored")


def _read_tensors(folder: Path, headers: Mapping[str, Mapping[str, TensorInfo]]) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in headers:
        try:
            with safe_open(str(folder / name), framework="pt", device="cpu") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open handles are not mappings
                    tensors[key] = handle.get_tensor(key)
        except (SafetensorError, OSError, RuntimeError) as error:
            raise CorruptCheckpointError(f"{folder / name}: cannot read tensors: {error}") from error
    return tensors


def _to_sparse_state(
    fmt: str,
    layers: Mapping[str, Mapping[str, Any]],
    tensors: dict[str, torch.Tensor],
    version: int = FORMAT_VERSION,
) -> dict[str, torch.Tensor]:
    """Convert the stored layer tensors to ``values`` / ``meta``, validating that they are 2:4.

    Native metadata comes back as a view with 16-byte aligned rows over its padded storage: as stored
    (version 2, padding checked to be zero) or padded now (version 1)."""
    state = dict(tensors)
    for name, entry in layers.items():
        in_f = int(entry["in_features"])
        try:
            if fmt == FORMAT_NATIVE:
                stored = state[f"{name}.meta"]
                words = meta_shape(0, in_f)[1]
                if version == 1:
                    meta = aligned_meta(stored)
                else:
                    meta = stored[:, :words]
                    if bool(stored[:, words:].any()):
                        raise ValueError(
                            "corrupt 2:4 metadata: the padding past a row's last word is not zero"
                        )
                check_meta(meta, in_f)
                state[f"{name}.meta"] = meta
                continue
            if fmt == FORMAT_BITMASK:
                shape = state.pop(f"{name}.shape").flatten().tolist()
                if shape != [int(entry["out_features"]), in_f]:
                    raise CheckpointMismatchError(f"layer {name!r}: {name}.shape is {shape}")
                values, meta = from_sparse24_bitmask(
                    state.pop(f"{name}.compressed"), state.pop(f"{name}.bitmask"), shape
                )
            else:
                weight = state.pop(f"{name}.weight")
                if entry.get("layout") == "conv1d":
                    weight = weight.t().contiguous()
                values, meta = compress_24(weight, impl="reference")
        except ValueError as error:
            if isinstance(error, CheckpointError):
                raise
            raise NotSparse24Error(f"layer {name!r} is declared 2:4 but is not: {error}") from None
        state[f"{name}.values"], state[f"{name}.meta"] = values, meta
    return state


def load_sparse(
    folder: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    backend: Backend = "auto",
    dispatch: DispatchTable = DEFAULT_DISPATCH,
    cache_dense: bool | None = None,
    verify: bool = True,
) -> nn.Module:
    """The model of a checkpoint written by :func:`save_sparse` or :func:`export`, with sparse layers.

    The model is built with its parameters on the meta device and receives the stored tensors directly, so
    no dense weight of a sparse layer is ever allocated (a ``dense`` export is compressed layer by layer).
    ``verify`` checks each file's sha256 against the manifest (sizes are always checked).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    block = _sparsity_block(folder, _read_json(folder / "config.json"))
    fmt, layers = block["format"], block["layers"]
    headers = _check_files(folder, block, verify)
    stored: dict[str, TensorInfo] = {}
    for infos in headers.values():
        stored.update(infos)
    layer_keys: set[str] = set()
    version = block.get("format_version", FORMAT_VERSION)
    for name, entry in layers.items():
        layer_keys |= _layer_keys(fmt, name, entry, stored, version)
    model = _build_skeleton(folder, layers, backend=backend, dispatch=dispatch, cache_dense=cache_dense)
    _check_keys(model, block, stored, layer_keys)
    state = _to_sparse_state(fmt, layers, _read_tensors(folder, headers), version)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    for alias, target in (block.get("tied") or {}).items():
        state[alias] = state[target]
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointMismatchError(f"{folder}: the tensors do not fit the model: {error}") from None
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointMismatchError(f"{folder}: no data for {leftovers[:5]}")
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.to(device).eval()


def read_sparsity_config(folder: str | Path) -> dict[str, Any]:
    """The ``sparsity_config`` block of a sparse checkpoint (raises :class:`CheckpointError` if none)."""
    folder = Path(folder)
    return _sparsity_block(folder, _read_json(folder / "config.json"))


def is_sparse_checkpoint(folder: str | Path) -> bool:
    try:
        read_sparsity_config(folder)
    except CheckpointError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------


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
    return _dedup_state(state)


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
    return _dedup_state(state)


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
    if src.resolve() == out.resolve():
        raise CheckpointError("export needs an output folder other than its source")
    model = load_sparse(src, verify=verify)
    block = read_sparsity_config(src)
    if format == "compressed":
        return save_sparse(
            model, out, source=src, metadata=SparsityMetadata.from_config_block(block), overwrite=overwrite
        )
    layers = sparse_layers(model)
    meta_block = {
        **SparsityMetadata.from_config_block(block).to_block(),
        "layers": _layer_entries(layers),
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
                "sparsity_structure": "2:4",
                "global_sparsity": _global_sparsity(model),
                "targets": sorted(layers),
                "ignore": [],
                "registry_requires_subclass": False,
            },
        }
    with _atomic_folder(out, overwrite) as tmp:
        files = _write_weights(tmp, weights_file, tensors, fmt)
        block_out = {
            "format": fmt,
            "format_version": FORMAT_VERSION,
            **meta_block,
            "tied": aliases,
            "files": files,
        }
        _write_config(model, tmp, block_out, quantization)
        _copy_side_files(src, tmp)
    return out


def checkpoint_summary(folder: str | Path) -> dict[str, Any]:
    """Format, file bytes and declared layers of a sparse checkpoint (for reports)."""
    block = read_sparsity_config(folder)
    return {
        "format": block["format"],
        "layers": len(block["layers"]),
        "bytes": sum(int(f["bytes"]) for f in block["files"].values()),
        "provenance": asdict(SparsityMetadata.from_config_block(block)),
    }
