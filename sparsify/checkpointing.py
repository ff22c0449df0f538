"""Resumable pruning: the state after every finished decoder block, on disk.

A working folder holds, after block ``k`` is done:

* ``block-000k.safetensors``: that block's parameters after pruning (one file per finished block);
* ``hidden-00(k+1).safetensors``: the inputs of the next block, one tensor per calibration batch (written
  and read back one batch at a time, so activations offloaded to disk never sit in memory all at once);
* ``state.json``: the run's fingerprint, the next block to do, and the report so far;
* ``<stream>-00(k+1).safetensors``: any other activation stream the run carries along the walk, by name
  (block-wise reconstruction towards the dense model keeps the dense model's activations as ``dense``).

Every file is written to a temporary name and renamed, and ``state.json`` is renamed last, so a run killed
at any moment (SIGKILL included) leaves either the previous consistent state or the new one. Started again
with the same model, configuration and calibration windows (same fingerprint), the run loads the pruned
blocks, reads the next block's inputs and carries on; the result is bitwise identical to an uninterrupted
run. A different fingerprint is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from polysparse.sparsify.activations import ActivationStore

log = logging.getLogger("polysparse.sparsify")

STATE_FILE = "state.json"
FORMAT_VERSION = 1


class ResumeMismatchError(ValueError):
    """A working folder from a different model, configuration or calibration set."""


class CorruptCheckpointError(ValueError):
    """A working folder whose files cannot be read back."""


def model_signature(model: nn.Module) -> str:
    """Cheap identity of a model: its config, and every parameter's name, shape, dtype and a few values."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, param in model.named_parameters():
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        if param.device.type != "meta" and param.numel():
            flat = param.detach().reshape(-1)
            probe = flat[:: max(1, flat.numel() // 16)][:16].float().cpu()
            digest.update(probe.numpy().tobytes())
    return digest.hexdigest()


def run_fingerprint(model: nn.Module, config: dict[str, Any], windows_sha256: str | None) -> str:
    """What must match for a working folder to be resumed: model, configuration, calibration windows."""
    payload = {
        "format": FORMAT_VERSION,
        "model": model_signature(model),
        # Where the work and its activations live does not change the result; offload_dtype can.
        "config": {k: v for k, v in config.items() if k not in ("device", "offload", "offload_dir")},
        "windows": windows_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
}


def _batch_name(index: int) -> str:
    return f"batch-{index:05d}"


def _atomic_save_batches(batches: ActivationStore, path: Path) -> None:
    """One safetensors file with a tensor per batch, written one batch at a time.

    ``safetensors.torch.save_file`` needs every tensor in memory at once; for activations offloaded to disk
    that is the whole calibration set, so the (simple) format is written here: an 8-byte little-endian
    header length, a JSON header of dtypes, shapes and byte offsets, then the raw bytes in order.
    """
    layout = batches.shapes()  # known without reading the batches
    header: dict[str, Any] = {}
    offset = 0
    for index, (shape, dtype) in enumerate(layout):
        if dtype not in _SAFETENSORS_DTYPES:
            raise TypeError(f"cannot checkpoint activations of dtype {dtype}")
        size = math.prod(shape) * dtype.itemsize
        header[_batch_name(index)] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the reference writer pads the header to 8 bytes
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for index, (shape, dtype) in enumerate(layout):
            tensor = batches[index].detach().to("cpu").contiguous()
            if tensor.shape != shape or tensor.dtype != dtype:
                raise ValueError(f"batch {index} changed from {tuple(shape)} {dtype} while being saved")
            handle.write(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer, no copy
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class SavedBatches(Sequence[torch.Tensor]):
    """The batches of a checkpoint's ``hidden-*.safetensors`` file, each read only when indexed."""

    def __init__(self, path: Path):
        self.path = path
        with safe_open(str(path), framework="pt") as handle:  # reads and checks the header only
            names = set(handle.keys())
        self._count = len(names)
        missing = [i for i in range(self._count) if _batch_name(i) not in names]
        if missing:
            raise CorruptCheckpointError(f"{path} lacks batch {missing[0]}")

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if not 0 <= index < self._count:
            raise IndexError(index)
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                return handle.get_tensor(_batch_name(index))
        except (OSError, SafetensorError) as error:
            raise CorruptCheckpointError(f"cannot read {self.path}: {error}") from None


@dataclass
class ResumeState:
    next_block: int
    hidden: Sequence[torch.Tensor] | None
    report: dict[str, Any]
    streams: dict[str, Sequence[torch.Tensor]] = field(default_factory=dict)


class PruneCheckpoint:
    """Saves and restores a pruning run's progress in ``folder`` for one fingerprint."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def _state(self) -> dict[str, Any] | None:
        path = self.folder / STATE_FILE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptCheckpointError(
                f"{path} is unreadable ({error}); start over with --overwrite"
            ) from None

    def check(self) -> int:
        """The next block to do (0 for a fresh folder); raise if the folder belongs to another run."""
        state = self._state()
        if state is None:
            return 0
        if state.get("fingerprint") != self.fingerprint:
            raise ResumeMismatchError(
                f"{self.folder} holds an interrupted run of a different model, configuration or calibration "
                "set; run the same command again to resume it, or pass --overwrite to start over"
            )
        return int(state["next_block"])

    def restore(self, blocks: nn.ModuleList, load_weights: bool = True) -> ResumeState | None:
        """Load the finished blocks into ``blocks`` and return where to continue (None: nothing to resume).

        ``load_weights=False`` only checks the finished blocks' files (streaming runs keep them on disk).
        """
        next_block = self.check()
        if next_block == 0:
            return None
        state = self._state()
        try:
            for index in range(next_block):
                if not load_weights:
                    with safe_open(str(self.folder / f"block-{index:04d}.safetensors"), framework="pt"):
                        continue
                tensors = load_file(str(self.folder / f"block-{index:04d}.safetensors"))
                missing, unexpected = blocks[index].load_state_dict(tensors, strict=False)
                if unexpected or missing:
                    raise CorruptCheckpointError(f"block {index}: missing {missing}, unexpected {unexpected}")
            hidden = None
            hidden_file = self.folder / f"hidden-{next_block:04d}.safetensors"
            if next_block < len(blocks) and hidden_file.exists():
                hidden = SavedBatches(hidden_file)
            streams = {
                name: SavedBatches(self.folder / f"{name}-{next_block:04d}.safetensors")
                for name in state.get("streams", [])
                if next_block < len(blocks)
            }
        except (OSError, KeyError, RuntimeError, SafetensorError) as error:
            raise CorruptCheckpointError(
                f"cannot resume from {self.folder}: {error}; pass --overwrite to start over"
            ) from None
        log.info("resuming from %s: blocks 0..%d are done", self.folder, next_block - 1)
        report = state.get("report", {})
        return ResumeState(next_block=next_block, hidden=hidden, report=report, streams=streams)

    def save(
        self,
        index: int,
        block: nn.Module,
        next_hidden: ActivationStore | None,
        report: dict[str, Any],
        streams: dict[str, ActivationStore] | None = None,
    ) -> None:
        """Record that block ``index`` is done; ``next_hidden`` are the inputs of block ``index + 1``.

        ``streams``: other activations the walk carries into block ``index + 1``, saved by name.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(block.state_dict(), self.folder / f"block-{index:04d}.safetensors")
        if next_hidden is not None:
            _atomic_save_batches(next_hidden, self.folder / f"hidden-{index + 1:04d}.safetensors")
        streams = {name: store for name, store in (streams or {}).items() if store is not None}
        for name, store in streams.items():
            _atomic_save_batches(store, self.folder / f"{name}-{index + 1:04d}.safetensors")
        state = {"fingerprint": self.fingerprint, "next_block": index + 1, "report": report}
        if streams:
            state["streams"] = sorted(streams)
        _atomic_write_bytes(self.folder / STATE_FILE, json.dumps(state, default=str).encode())
        for prefix in ["hidden", *streams]:
            for old in self.folder.glob(f"{prefix}-*.safetensors"):
                if old.name != f"{prefix}-{index + 1:04d}.safetensors":
                    old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
