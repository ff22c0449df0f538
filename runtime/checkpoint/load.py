"""Loading a sparse checkpoint without dense weights, every check that needs no tensor data first."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polysparse.kernels import (
    META_ROW_ALIGN,
    aligned_meta,
    check_meta,
    compress_24,
    from_sparse24_bitmask,
    meta_shape,
)
from polysparse.runtime.checkpoint.errors import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
)
from polysparse.runtime.checkpoint.files import TensorInfo, file_digest, read_header, read_json, read_tensors
from polysparse.runtime.checkpoint.metadata import (
    FORMAT_BITMASK,
    FORMAT_DENSE,
    FORMAT_NATIVE,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    SparsityMetadata,
)
from polysparse.runtime.linear import DEFAULT_DISPATCH, Backend, DispatchTable, Sparse24Linear, module_layout
from polysparse.sparsify.streaming import parameters_on_meta


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules with their parameters on the meta device; buffers stay real.

    Non-persistent buffers (RoPE frequencies, embedding scales) are computed in ``__init__`` and are in no
    checkpoint, so they must be real; parameters are moved to ``meta`` as they are registered
    (:func:`~polysparse.sparsify.streaming.parameters_on_meta`), and ``nn.Linear`` / ``Conv1D`` run their
    whole ``__init__`` on ``meta`` so that not even an uninitialised dense weight is allocated for a layer
    that may be sparse.
    """
    from transformers.pytorch_utils import Conv1D

    inits = {cls: cls.__init__ for cls in (nn.Linear, Conv1D)}

    def on_meta(init):
        @functools.wraps(init)
        def wrapped(self, *args, **kwargs):
            with torch.device("meta"):
                init(self, *args, **kwargs)

        return wrapped

    for cls, init in inits.items():
        cls.__init__ = on_meta(init)
    try:
        with parameters_on_meta():
            yield
    finally:
        for cls, init in inits.items():
            cls.__init__ = init


def sparsity_block(folder: Path, config: Mapping[str, Any]) -> dict[str, Any]:
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
        wanted = {"bytes": int, "sha256": str} if verify else {"bytes": int}
        for key, kind in wanted.items():
            value = expected.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                what = "an integer" if kind is int else "a string"
                raise CheckpointMismatchError(
                    f"{folder}: the manifest entry of {name!r} has {key} {value!r} ({type(value).__name__}); "
                    f"the manifest records {key} as {what}"
                )
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
        _expect(infos, f"{name}.meta", stored_meta_shape(out_f, in_f, version), torch.int16)
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


def stored_meta_shape(out_features: int, in_features: int, version: int = FORMAT_VERSION) -> tuple[int, int]:
    """Shape of a layer's metadata as a native checkpoint of format ``version`` stores it."""
    return (
        meta_shape(out_features, in_features)
        if version == 1
        else padded_meta_shape(out_features, in_features)
    )


def native_meta(stored: torch.Tensor, in_features: int, version: int = FORMAT_VERSION) -> torch.Tensor:
    """The metadata a :class:`Sparse24Linear` holds, from a native checkpoint's stored words (validated).

    A view with 16-byte aligned rows over the padded storage: as stored (version 2, its padding checked to be
    zero) or padded now (version 1). Raises ``ValueError`` on corrupt metadata."""
    if version == 1:
        meta = aligned_meta(stored)
    else:
        meta = stored[:, : meta_shape(0, in_features)[1]]
        if bool(stored[:, meta.shape[1] :].any()):
            raise ValueError("corrupt 2:4 metadata: the padding past a row's last word is not zero")
    check_meta(meta, in_features)
    return meta


def swap_in_shells(
    model: nn.Module,
    layers: Mapping[str, Mapping[str, Any]],
    *,
    stored_version: int | None = None,
    **module_kwargs: Any,
) -> None:
    """Replace each declared layer of ``model`` by a :class:`Sparse24Linear` whose tensors are on ``meta``.

    The declared layout, shape and bias must match the module the model has. With ``stored_version`` the
    shell's metadata has the shape a native checkpoint of that version stores (what transformers' loader
    copies in as it is; :func:`native_meta` converts it), else the shape the layer holds. The shell's floats
    take the dtype of the weight it replaces (transformers casts the stored values to it)."""
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    for name, entry in layers.items():
        try:
            module = model.get_submodule(name)
            layout = module_layout(module)
        except (AttributeError, TypeError):
            raise CheckpointMismatchError(
                f"layer {name!r} of sparsity_config is not a Linear/Conv1D of this {model_type} model"
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
        dtype = module.weight.dtype
        shape = (
            meta_shape(out_f, in_f)
            if stored_version is None
            else stored_meta_shape(out_f, in_f, stored_version)
        )
        shell = Sparse24Linear(
            torch.empty(out_f, in_f // 2, device="meta", dtype=dtype),
            torch.empty(shape, dtype=torch.int16, device="meta"),
            torch.empty(out_f, device="meta", dtype=dtype) if module.bias is not None else None,
            layout=layout,
            **module_kwargs,
        )
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, shell)


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
    swap_in_shells(model, layers, **module_kwargs)
    return model


@dataclass(frozen=True)
class StoredTensors:
    """What a checkpoint's files hold, read from their headers only (no tensor data)."""

    headers: dict[str, dict[str, TensorInfo]]  # file name -> tensor name -> dtype and shape
    infos: dict[str, TensorInfo]  # every stored tensor
    layer_keys: frozenset[str]  # the stored tensors of the declared sparse layers


def inspect_files(folder: Path, block: Mapping[str, Any], verify: bool = True) -> StoredTensors:
    """Check the files against the manifest (sizes; sha256 with ``verify``) and the declared layers'
    tensors (names, shapes, dtypes) against ``sparsity_config``; no tensor data is read."""
    headers = _check_files(folder, block, verify)
    infos: dict[str, TensorInfo] = {}
    for file_infos in headers.values():
        infos.update(file_infos)
    version = block.get("format_version", FORMAT_VERSION)
    layer_keys: set[str] = set()
    for name, entry in block["layers"].items():
        layer_keys |= _layer_keys(block["format"], name, entry, infos, version)
    return StoredTensors(headers, infos, frozenset(layer_keys))


def check_model_keys(model: nn.Module, block: Mapping[str, Any], stored: StoredTensors) -> None:
    """Every non-sparse tensor the model (its sparse layers swapped for shells) expects is stored with the
    same shape; nothing else is stored."""
    aliases = dict(block.get("tied") or {})
    expected = {}
    for name, tensor in model.state_dict().items():
        if name in aliases:
            continue
        expected[name] = tuple(tensor.shape)
    layer_prefixes = tuple(f"{name}." for name in block["layers"])
    infos, layer_keys = stored.infos, stored.layer_keys
    missing = [k for k in expected if k not in infos and not k.startswith(layer_prefixes)]
    unexpected = [k for k in infos if k not in expected and k not in layer_keys]
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"the files do not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, shape in expected.items():
        if key in infos and key not in layer_keys and infos[key].shape != shape:
            raise CheckpointMismatchError(
                f"tensor {key!r} has shape {infos[key].shape}, the model expects {shape}"
            )
    for alias, target in aliases.items():
        if target not in infos:
            raise CheckpointMismatchError(f"tied tensor {alias!r} points at {target!r}, which is not stored")


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
                state[f"{name}.meta"] = native_meta(state[f"{name}.meta"], in_f, version)
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


def _check_tied_head(
    folder: Path, model: nn.Module, aliases: Mapping[str, str], state: dict[str, torch.Tensor]
):
    """Refuse an output embedding stored in its own right, and different from the input embedding, in a
    checkpoint whose config ties the two: ``tie_weights`` would drop the stored head without a word (as
    transformers does, with a warning) and every logit would change."""
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if not getattr(text_config, "tie_word_embeddings", False):
        return
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or embedding is None:
        return
    names = {id(module): name for name, module in model.named_modules()}
    head_key, embedding_key = f"{names[id(head)]}.weight", f"{names[id(embedding)]}.weight"
    if head_key in aliases or head_key not in state or embedding_key not in state:
        return
    if state[head_key].shape == state[embedding_key].shape and torch.equal(
        state[head_key], state[embedding_key]
    ):
        return  # the tie loses nothing
    raise CheckpointMismatchError(
        f"{folder}: config.json says tie_word_embeddings: true, but the files store their own {head_key}, "
        f"which differs from {embedding_key}; loading would replace it by the embedding and change every "
        "logit. Set tie_word_embeddings to false in config.json if the stored head is meant"
    )


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
    block = sparsity_block(folder, read_json(folder / "config.json"))
    fmt, layers = block["format"], block["layers"]
    stored = inspect_files(folder, block, verify)
    model = _build_skeleton(folder, layers, backend=backend, dispatch=dispatch, cache_dense=cache_dense)
    check_model_keys(model, block, stored)
    version = block.get("format_version", FORMAT_VERSION)
    state = _to_sparse_state(fmt, layers, read_tensors(folder, stored.headers), version)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    _check_tied_head(folder, model, block.get("tied") or {}, state)
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
    return sparsity_block(folder, read_json(folder / "config.json"))


def is_sparse_checkpoint(folder: str | Path) -> bool:
    """True when ``config.json`` declares one of polysparse's sparse formats, whatever its version: reading
    the folder then says whether this polysparse can (an unknown ``format_version`` is that error, not a
    reason to treat the folder as a dense model)."""
    try:
        config = read_json(Path(folder) / "config.json")
    except CheckpointError:
        return False
    block = config.get("sparsity_config")
    return isinstance(block, dict) and block.get("format") in (FORMAT_NATIVE, FORMAT_DENSE, FORMAT_BITMASK)


def checkpoint_summary(folder: str | Path) -> dict[str, Any]:
    """Format, file bytes and declared layers of a sparse checkpoint (for reports)."""
    block = read_sparsity_config(folder)
    return {
        "format": block["format"],
        "layers": len(block["layers"]),
        "bytes": sum(int(f["bytes"]) for f in block["files"].values()),
        "provenance": asdict(SparsityMetadata.from_config_block(block)),
    }
