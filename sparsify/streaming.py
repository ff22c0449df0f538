"""Pruning models larger than memory: decoder blocks are read from the safetensors files one at a time.

The model is built with every parameter on the ``meta`` device (buffers such as RoPE tables stay real, as
they are computed at construction); the parameters outside the decoder blocks (embeddings, final norm, LM
head) are read from the checkpoint, and each block's parameters are read just before the driver needs the
block and dropped (back to ``meta``) right after its pruned weights are saved in the working folder. Peak
host memory is therefore about one block plus the embeddings and the calibration activations, not the model.
The finished output is assembled from the saved blocks one shard at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from polysparse.sparsify import strict_json
from polysparse.sparsify.checkpointing import file_sha256

log = logging.getLogger("polysparse.sparsify")

WEIGHTS_INDEX = "model.safetensors.index.json"


class StreamingUnsupportedError(ValueError):
    """A checkpoint whose tensor names do not match the model's parameters."""


class SafetensorsCheckpoint:
    """Which file holds which tensor in a model folder; reads single tensors on demand."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = self.folder / WEIGHTS_INDEX
        if index.exists():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            self.files = {key: self.folder / name for key, name in weight_map.items()}
        else:
            files = sorted(self.folder.glob("*.safetensors"))
            if not files:
                raise StreamingUnsupportedError(f"{self.folder} has no .safetensors files")
            self.files = self._tensor_files(files)

    @classmethod
    def of_files(cls, paths: list[Path]) -> SafetensorsCheckpoint:
        """The tensors of exactly these files (a manifest's list rather than a folder's)."""
        checkpoint = cls.__new__(cls)
        checkpoint.folder = paths[0].parent if paths else Path()
        checkpoint.files = cls._tensor_files(paths)
        return checkpoint

    @staticmethod
    def _tensor_files(paths: list[Path]) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in paths:
            with safe_open(str(path), framework="pt") as handle:
                files.update({key: path for key in handle.keys()})  # noqa: SIM118
        return files

    def keys(self) -> set[str]:
        return set(self.files)

    def read(self, keys: list[str]) -> dict[str, torch.Tensor]:
        by_file: dict[Path, list[str]] = {}
        for key in keys:
            by_file.setdefault(self.files[key], []).append(key)
        tensors = {}
        for path, names in by_file.items():
            with safe_open(str(path), framework="pt") as handle:
                tensors.update({name: handle.get_tensor(name) for name in names})
        return tensors

    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in set(self.files.values()))

    def content_digest(self) -> str:
        """SHA-256 over every byte of the safetensors files, in name order (one read of the weights)."""
        digest = hashlib.sha256()
        for path in sorted(set(self.files.values())):
            digest.update(f"{path.name}:{file_sha256(path)}".encode())
        return digest.hexdigest()


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on ``meta`` (no memory) and their buffers for real."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def _assign(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    owner._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)


class BlockStreamer:
    """Reads a block's parameters before its step and drops them after it (see the module docstring)."""

    def __init__(self, checkpoint: SafetensorsCheckpoint, block_path: str, dtype: torch.dtype):
        self.checkpoint = checkpoint
        self.block_path = block_path
        self.dtype = dtype

    def load(self, index: int, block: nn.Module) -> None:
        prefix = f"{self.block_path}.{index}."
        names = [name for name, _ in block.named_parameters()]
        tensors = self.checkpoint.read([prefix + name for name in names])
        for name in names:
            _assign(block, name, tensors[prefix + name].to(self.dtype))

    def content_digest(self) -> str:
        """The weights' content hash for the resume fingerprint (the blocks are not in memory)."""
        return self.checkpoint.content_digest()

    def unload(self, index: int, block: nn.Module) -> None:
        for name, param in list(block.named_parameters()):
            _assign(block, name, torch.empty_like(param, device="meta"))


def load_streaming_model(folder: str | Path, dtype: str | torch.dtype = "auto"):
    """``(model, tokenizer, streamer)``: blocks on ``meta``, everything else read from the checkpoint."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from polysparse.sparsify.loading import (
        ModelLoadError,
        check_initialised,
        check_model_folder,
        load_tokenizer,
        parse_dtype,
    )
    from polysparse.sparsify.model_graph import find_decoder_stack

    folder = check_model_folder(folder)
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        wanted = parse_dtype(dtype)
        if wanted == "auto":
            wanted = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
            wanted = getattr(torch, wanted) if isinstance(wanted, str) else wanted
        with parameters_on_meta():
            model = AutoModelForCausalLM.from_config(config, dtype=wanted)
        checkpoint = SafetensorsCheckpoint(folder)
    except Exception as error:  # config, transformers and safetensors raise many types on bad files
        raise ModelLoadError(
            f"could not load the model in {folder}: {type(error).__name__}: {error}"
        ) from error
    model.eval()
    stack = find_decoder_stack(model)
    names = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    block_prefix = f"{stack.path}."
    outside = sorted(name for name in names if not name.startswith(block_prefix))
    present = [name for name in outside if name in checkpoint.files]
    stray = sorted(k for k in checkpoint.keys() - names)
    if stray:
        raise StreamingUnsupportedError(
            f"{folder}: tensor names differ from the model's parameters (e.g. {stray[:3]}); "
            "prune without --stream"
        )
    for name, tensor in checkpoint.read(present).items():
        _assign(model, name, tensor.to(wanted))
    model.tie_weights()
    still_meta = [
        n for n, p in model.named_parameters() if p.device.type == "meta" and not n.startswith(block_prefix)
    ]
    absent_in_blocks = [n for n in names if n.startswith(block_prefix) and n not in checkpoint.files]
    check_initialised(folder, [*still_meta, *absent_in_blocks])  # what the full load would fill at random
    return model, load_tokenizer(folder), BlockStreamer(checkpoint, stack.path, wanted)


def write_streamed_output(
    model: nn.Module, source: str | Path, work_dir: Path, out_dir: Path, report: dict, overwrite: bool = False
) -> Path:
    """Assemble the pruned model folder from the blocks saved in ``work_dir``, one shard per block.

    Written into a temporary sibling folder and renamed, like every polysparse output.
    """
    from polysparse.sparsify.model_graph import find_decoder_stack
    from polysparse.sparsify.output import (
        atomic_output_folder,
        drop_inherited_sparsity_record,
        write_report,
    )

    source = Path(source)
    stack = find_decoder_stack(model)
    with atomic_output_folder(out_dir, overwrite) as tmp:
        count = len(stack.blocks) + 1
        weight_map: dict[str, str] = {}
        total = 0
        for index in range(len(stack.blocks)):
            tensors = load_file(str(work_dir / f"block-{index:04d}.safetensors"))
            tensors = {f"{stack.path}.{index}.{k}": v for k, v in tensors.items()}
            name = f"model-{index + 1:05d}-of-{count:05d}.safetensors"
            save_file(tensors, str(tmp / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, name))
            total += sum(t.numel() * t.element_size() for t in tensors.values())
        source_keys = SafetensorsCheckpoint(source).keys()
        outside = {
            k: v.detach().contiguous()
            for k, v in model.state_dict().items()
            if not k.startswith(f"{stack.path}.") and k in source_keys
        }
        name = f"model-{count:05d}-of-{count:05d}.safetensors"
        save_file(outside, str(tmp / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(outside, name))
        total += sum(t.numel() * t.element_size() for t in outside.values())
        index_file = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / WEIGHTS_INDEX).write_text(strict_json.dumps(index_file), encoding="utf-8")
        for path in source.iterdir():
            if path.is_file() and not path.name.endswith(".safetensors") and path.name != WEIGHTS_INDEX:
                shutil.copy2(path, tmp / path.name)
        drop_inherited_sparsity_record(tmp)
        write_report(tmp, report)
    return Path(out_dir)
