"""Resumable pruning: the state after every finished decoder block, on disk.

A working folder holds, after block ``k`` is done:

* ``block-000k.safetensors``: that block's parameters after pruning (one file per finished block);
* ``hidden-00(k+1).safetensors``: the inputs of the next block, one tensor per calibration batch (written
  and read back one batch at a time, so activations offloaded to disk never sit in memory all at once);
* ``state.json``: the run's fingerprint, the next block to do, the report so far, and the SHA-256 of every
  file that a resume will read;
* ``<stream>-00(k+1).safetensors``: any other activation stream the run carries along the walk, by name
  (block-wise reconstruction towards the dense model keeps the dense model's activations as ``dense``);
* ``lock``: an ``fcntl`` lock held by the run writing the folder (see :class:`WorkFolderLock`).

Every file is written to a temporary name and renamed, and ``state.json`` is renamed last, so a run killed
at any moment (SIGKILL included) leaves either the previous consistent state or the new one. Started again
with the same model, configuration and calibration windows (same fingerprint), the run loads the pruned
blocks, reads the next block's inputs and carries on; the result is bitwise identical to an uninterrupted
run. A different fingerprint is refused, and so is a file whose checksum differs from the one recorded
when it was written (a flipped byte in a block file would otherwise load as a wrong weight).

The fingerprint hashes every byte of the model's weights (:func:`model_signature`), so a model edited in
place after a kill is never resumed with blocks pruned from the old weights. The cost is one pass over the
weights at the start of every checkpointed run (measured in docs/scale.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
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

from polysparse.sparsify import strict_json
from polysparse.sparsify.activations import ActivationStore

log = logging.getLogger("polysparse.sparsify")

STATE_FILE = "state.json"
LOCK_FILE = "lock"
# 2: full-content model fingerprint and a SHA-256 per file in state.json.
FORMAT_VERSION = 2
_HASH_CHUNK = 1 << 24


class ResumeMismatchError(ValueError):
    """A working folder from a different model, configuration or calibration set."""


class CorruptCheckpointError(ValueError):
    """A working folder whose files cannot be read back."""


class WorkFolderLockedError(RuntimeError):
    """Another live process is writing the same working folder."""


class WorkFolderLock:
    """An exclusive ``fcntl.flock`` on ``<folder>/lock`` for the life of a run.

    The kernel releases the lock when the process dies (SIGKILL included), so a killed run never blocks the
    next one, while two live runs into one output are refused before either does any work. The holder's pid
    is written into the file for the message. If the folder is removed and made again while a process waits
    on the old file, the lock is taken again on the new one (a lock on an unlinked file protects nothing).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> WorkFolderLock:
        for _ in range(10):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise WorkFolderLockedError(
                    f"another polysparse process ({self._holder()}) is writing {self.folder}; wait for it to "
                    "finish or choose another --out"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # the folder was removed under us; lock the new one
        raise WorkFolderLockedError(f"{self.folder} keeps being removed and made again; is another run busy?")

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid else "pid unknown"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> WorkFolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def clear_work_folder(folder: str | Path) -> None:
    """Remove everything in a working folder except its lock file (``--overwrite`` under the lock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def model_signature(model: nn.Module) -> str:
    """Identity of a model by content: its config, and every parameter's name, shape, dtype and every byte.

    Parameters on the ``meta`` device (blocks of a streamed model) contribute their names and shapes only;
    the streamed files are hashed by :meth:`~polysparse.sparsify.streaming.BlockStreamer.content_digest`.
    """
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, param in model.named_parameters():
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        if param.device.type != "meta" and param.numel():
            digest.update(_tensor_bytes(param))
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(folder: str | Path) -> str:
    """Identity of a model folder by content, for results kept across runs (the study's cells): the SHA-256
    of every weight file, as a streamed prune's resume hashes them, and of ``config.json`` less the
    transformers version that wrote it (a re-save by a newer transformers holds the same model)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("transformers_version", None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")]):
        digest.update(f"{path.name}:{file_sha256(path)}".encode())
    return digest.hexdigest()


def run_fingerprint(
    model: nn.Module,
    config: dict[str, Any],
    windows_sha256: str | None,
    weights_sha256: str | None = None,
) -> str:
    """What must match for a working folder to be resumed: model, configuration, calibration windows.

    ``weights_sha256`` is the content hash of weights that are not in memory (a streamed model's files).
    """
    payload = {
        "format": FORMAT_VERSION,
        "model": model_signature(model),
        "weights": weights_sha256,
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


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> str:
    """Write a safetensors file atomically; return its SHA-256 (read back from the page cache)."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    checksum = file_sha256(tmp)
    os.replace(tmp, path)
    return checksum


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
}


def _batch_name(index: int) -> str:
    return f"batch-{index:05d}"


def _atomic_save_batches(batches: ActivationStore, path: Path) -> str:
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
    encoded = strict_json.dumps(header, indent=None, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the reference writer pads the header to 8 bytes
    tmp = path.with_name(f".{path.name}.tmp")
    digest = hashlib.sha256()
    with tmp.open("wb") as handle:
        for piece in (struct.pack("<Q", len(encoded)), encoded):
            handle.write(piece)
            digest.update(piece)
        for index, (shape, dtype) in enumerate(layout):
            tensor = batches[index].detach().to("cpu").contiguous()
            if tensor.shape != shape or tensor.dtype != dtype:
                raise ValueError(f"batch {index} changed from {tuple(shape)} {dtype} while being saved")
            data = tensor.reshape(-1).view(torch.uint8).numpy()  # the buffer, no copy
            handle.write(data)
            digest.update(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return digest.hexdigest()


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
        self._checksums: dict[str, str] = {}

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
        if state.get("format") != FORMAT_VERSION or not isinstance(state.get("files"), dict):
            raise ResumeMismatchError(
                f"{self.folder} holds an interrupted run written by another polysparse version (format "
                f"{state.get('format', 1)}, this one writes {FORMAT_VERSION}); pass --overwrite to start over"
            )
        if state.get("fingerprint") != self.fingerprint:
            raise ResumeMismatchError(
                f"{self.folder} holds an interrupted run of a different model, configuration or calibration "
                "set; run the same command again to resume it, or pass --overwrite to start over"
            )
        return int(state["next_block"])

    def _verify(self, name: str) -> Path:
        """The path of a file the resume reads, after checking its SHA-256 against the recorded one."""
        path = self.folder / name
        expected = self._checksums.get(name)
        if expected is None:
            raise CorruptCheckpointError(f"{STATE_FILE} records no checksum for {name}")
        if not path.is_file():
            raise CorruptCheckpointError(f"{name} is missing")
        if file_sha256(path) != expected:
            raise CorruptCheckpointError(
                f"{name} differs from the file written by the run (its SHA-256 does not match the one "
                "recorded in state.json)"
            )
        return path

    def restore(self, blocks: nn.ModuleList, load_weights: bool = True) -> ResumeState | None:
        """Load the finished blocks into ``blocks`` and return where to continue (None: nothing to resume).

        Every file is checked against the SHA-256 recorded when it was written before it is read.
        ``load_weights=False`` only checks the finished blocks' files (streaming runs keep them on disk).
        """
        next_block = self.check()
        if next_block == 0:
            return None
        state = self._state()
        self._checksums = dict(state["files"])
        try:
            for index in range(next_block):
                path = self._verify(f"block-{index:04d}.safetensors")
                if not load_weights:
                    with safe_open(str(path), framework="pt"):
                        continue
                tensors = load_file(str(path))
                missing, unexpected = blocks[index].load_state_dict(tensors, strict=False)
                if unexpected or missing:
                    raise CorruptCheckpointError(f"block {index}: missing {missing}, unexpected {unexpected}")
            hidden = None
            hidden_name = f"hidden-{next_block:04d}.safetensors"
            if next_block < len(blocks) and hidden_name in self._checksums:
                hidden = SavedBatches(self._verify(hidden_name))
            streams = {
                name: SavedBatches(self._verify(f"{name}-{next_block:04d}.safetensors"))
                for name in state.get("streams", [])
                if next_block < len(blocks)
            }
        except (OSError, KeyError, RuntimeError, SafetensorError, CorruptCheckpointError) as error:
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
        block_name = f"block-{index:04d}.safetensors"
        hidden_name = f"hidden-{index + 1:04d}.safetensors"
        # Finished blocks stay; the activations of earlier blocks are replaced below.
        checksums = {k: v for k, v in self._checksums.items() if k.startswith("block-")}
        checksums[block_name] = _atomic_save(block.state_dict(), self.folder / block_name)
        if next_hidden is not None:
            checksums[hidden_name] = _atomic_save_batches(next_hidden, self.folder / hidden_name)
        streams = {name: store for name, store in (streams or {}).items() if store is not None}
        for name, store in streams.items():
            stream_name = f"{name}-{index + 1:04d}.safetensors"
            checksums[stream_name] = _atomic_save_batches(store, self.folder / stream_name)
        state = {
            "format": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "next_block": index + 1,
            "report": report,
            "files": checksums,
        }
        if streams:
            state["streams"] = sorted(streams)
        _atomic_write_bytes(self.folder / STATE_FILE, strict_json.dumps(state, indent=None).encode())
        self._checksums = checksums
        for prefix in ["hidden", *streams]:
            for old in self.folder.glob(f"{prefix}-*.safetensors"):
                if old.name != f"{prefix}-{index + 1:04d}.safetensors":
                    old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
