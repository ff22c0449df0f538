"""Resumable pruning: the state after every finished decoder block, on disk.

A working folder holds, after block ``k`` is done:

* ``block-000k.safetensors``: that block's parameters after pruning (one file per finished block);
* ``hidden-00(k+1).safetensors``: the inputs of the next block, one tensor per calibration batch;
* ``state.json``: the run's fingerprint, the next block to do, and the report so far.

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
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

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
        "config": {k: v for k, v in config.items() if k not in ("device",)},
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


@dataclass
class ResumeState:
    next_block: int
    hidden: list[torch.Tensor] | None
    report: dict[str, Any]


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
                loaded = load_file(str(hidden_file))
                hidden = [loaded[f"batch-{i:05d}"] for i in range(len(loaded))]
        except (OSError, KeyError, RuntimeError, SafetensorError) as error:
            raise CorruptCheckpointError(
                f"cannot resume from {self.folder}: {error}; pass --overwrite to start over"
            ) from None
        log.info("resuming from %s: blocks 0..%d are done", self.folder, next_block - 1)
        return ResumeState(next_block=next_block, hidden=hidden, report=state.get("report", {}))

    def save(
        self, index: int, block: nn.Module, next_hidden: list[torch.Tensor] | None, report: dict[str, Any]
    ) -> None:
        """Record that block ``index`` is done; ``next_hidden`` are the inputs of block ``index + 1``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(block.state_dict(), self.folder / f"block-{index:04d}.safetensors")
        if next_hidden is not None:
            tensors = {f"batch-{i:05d}": h for i, h in enumerate(next_hidden)}
            _atomic_save(tensors, self.folder / f"hidden-{index + 1:04d}.safetensors")
        state = {"fingerprint": self.fingerprint, "next_block": index + 1, "report": report}
        _atomic_write_bytes(self.folder / STATE_FILE, json.dumps(state, default=str).encode())
        for old in self.folder.glob("hidden-*.safetensors"):
            if old.name != f"hidden-{index + 1:04d}.safetensors":
                old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
