"""Where the calibration activations live between decoder blocks.

The sequential driver holds, for every calibration batch, the hidden states entering the current block
and, while the block runs, the ones it produces for the next block: about
``2 x nsamples x seqlen x hidden_size`` values. For Llama-3-70B (hidden 8192) with 128 windows of 2048
tokens in bfloat16 that is 2 x 4.3 GB, more than many GPUs can spare beside a block. An
:class:`ActivationStore` keeps them according to the user's ``--offload``:

* ``none`` (default): on the working device; nothing moves.
* ``cpu``: in host memory; each batch is copied to the working device when the block runs, so the GPU
  holds one batch at a time.
* ``disk``: one safetensors file per batch in a folder; each batch is read back when the block runs, so
  host and GPU memory hold one batch at a time.

``dtype`` (``float16`` / ``bfloat16``) stores them in half precision, cast back to the dtype they were
produced in when read: half the memory or disk, at the price of rounding the block inputs. A bfloat16
model stored in bfloat16 is unchanged; a float32 model's masks may then differ slightly from an
unoffloaded run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from polysparse.sparsify.config import OFFLOAD_DTYPE_NAMES, OFFLOAD_NAMES

OFFLOAD_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in OFFLOAD_DTYPE_NAMES}


@dataclass(frozen=True)
class _Entry:
    """One stored batch: its tensor (memory) or file (disk), and the shape and dtype it is read back as."""

    shape: torch.Size
    dtype: torch.dtype
    tensor: torch.Tensor | None = None
    path: Path | None = None


class ActivationStore(Sequence[torch.Tensor]):
    """An append-only list of per-batch hidden states; indexing returns them on ``device``.

    On disk every store writes into its own folder inside ``root`` (the caller owns ``root``).
    ``successor()`` gives an empty store with the same policy for the next block's inputs, so a block can
    read its inputs while its outputs are written; ``close()`` frees this store's tensors or files.
    """

    def __init__(
        self,
        device: torch.device | str,
        offload: str = "none",
        dtype: str | None = None,
        root: str | Path | None = None,
    ):
        if offload not in OFFLOAD_NAMES:
            raise ValueError(f"offload must be one of {', '.join(OFFLOAD_NAMES)}, got {offload!r}")
        if dtype is not None and dtype not in OFFLOAD_DTYPES:
            raise ValueError(f"offload dtype must be one of {', '.join(OFFLOAD_DTYPES)}, got {dtype!r}")
        if offload == "disk" and root is None:
            raise ValueError("offloading activations to disk needs a folder to write them in")
        self.device = torch.device(device)
        self.offload = offload
        self.dtype = dtype
        self.root = Path(root) if offload == "disk" else None
        self._folder: Path | None = None
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="store-", dir=self.root))
        self._entries: list[_Entry] = []

    def successor(self) -> ActivationStore:
        """An empty store with this one's policy (on disk: a new folder beside this one's)."""
        return ActivationStore(self.device, self.offload, self.dtype, self.root)

    @property
    def storage_dtype(self) -> torch.dtype | None:
        return OFFLOAD_DTYPES[self.dtype] if self.dtype is not None else None

    def append(self, hidden: torch.Tensor) -> None:
        hidden = hidden.detach()
        stored = hidden if self.storage_dtype is None else hidden.to(self.storage_dtype)
        if self.offload == "disk":
            path = self._folder / f"batch-{len(self._entries):05d}.safetensors"
            save_file({"hidden": stored.contiguous().cpu()}, str(path))
            self._entries.append(_Entry(hidden.shape, hidden.dtype, path=path))
        else:
            home = self.device if self.offload == "none" else torch.device("cpu")
            self._entries.append(_Entry(hidden.shape, hidden.dtype, tensor=stored.to(home)))

    def extend(self, tensors: Sequence[torch.Tensor]) -> ActivationStore:
        for tensor in tensors:
            self.append(tensor)
        return self

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        entry = self._entries[index]
        tensor = entry.tensor if entry.tensor is not None else load_file(str(entry.path))["hidden"]
        return tensor.to(device=self.device, dtype=entry.dtype)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for index in range(len(self)):
            yield self[index]

    def shapes(self) -> list[tuple[torch.Size, torch.dtype]]:
        """Each batch's shape and read-back dtype, without reading the batches."""
        return [(entry.shape, entry.dtype) for entry in self._entries]

    def close(self) -> None:
        """Free the stored batches (tensors dropped, files removed)."""
        self._entries.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
