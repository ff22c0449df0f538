"""Conversions between polysparse's 2:4 format (:mod:`polysparse.kernels.sparse24`) and other layouts.

Other layouts (all exact on the dense matrix):

* PyTorch's CUTLASS layout (:func:`to_cutlass_layout` / :func:`from_cutlass_layout`, pure torch, any
  device): the same values and the same 16-bit words, permuted by PyTorch's CUTLASS reordering; positions
  are preserved bit for bit.
* PyTorch semi-structured tensors (:func:`to_torch_semi_structured` / :func:`from_torch_semi_structured`):
  CUDA only (sm80+). The CUTLASS backend is built from the words directly; cuSPARSELt's compressed layout
  is opaque, so it goes through the dense matrix (dense-exact; a kept zero may move position).
* compressed-tensors ``sparse-24-bitmask`` (:func:`to_sparse24_bitmask` / :func:`from_sparse24_bitmask`):
  ``compressed`` ``(R, K / 2)`` holding the kept weights row-major in column order (which is ``values``),
  ``bitmask`` ``(R, ceil(K / 8))`` uint8 with bit ``c % 8`` of byte ``c // 8`` set for every kept column
  ``c`` (numpy ``packbits(..., bitorder="little")``), and the dense ``shape``. Exactly two bits are set per
  group, as compressed-tensors writes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from polysparse.kernels.sparse24 import (
    check_compressed,
    check_meta,
    compress_24,
    decompress_24,
    keep_from_meta,
    meta_shape,
    pack_nibbles,
    positions_from_keep,
)

# ----------------------------------------------------------------------------------------------------------
# compressed-tensors sparse-24-bitmask
# ----------------------------------------------------------------------------------------------------------


def to_sparse24_bitmask(
    values: torch.Tensor, meta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``(compressed, bitmask, shape)`` in compressed-tensors' ``sparse-24-bitmask`` layout."""
    rows, cols = check_compressed(values, meta)
    keep = keep_from_meta(meta, cols)
    nbytes = -(-cols // 8)
    padded = torch.zeros(rows, nbytes * 8, dtype=torch.int32, device=meta.device)
    padded[:, :cols] = keep.to(torch.int32)
    bits = 1 << torch.arange(8, dtype=torch.int32, device=meta.device)
    bitmask = (padded.reshape(rows, nbytes, 8) * bits).sum(-1).to(torch.uint8)
    return values.clone(), bitmask, [rows, cols]


def from_sparse24_bitmask(
    compressed: torch.Tensor, bitmask: torch.Tensor, shape: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, meta)`` from compressed-tensors' ``sparse-24-bitmask`` tensors (two bits set per group)."""
    rows, cols = (int(s) for s in (shape.flatten().tolist() if isinstance(shape, torch.Tensor) else shape))
    if cols % 4:
        raise ValueError(f"in_features={cols} is not a multiple of 4")
    if tuple(bitmask.shape) != (rows, -(-cols // 8)) or bitmask.dtype != torch.uint8:
        raise ValueError(
            f"bitmask must be uint8 of shape {(rows, -(-cols // 8))}, "
            f"got {bitmask.dtype} {tuple(bitmask.shape)}"
        )
    if tuple(compressed.shape) != (rows, cols // 2):
        raise ValueError(f"compressed must have shape {(rows, cols // 2)}, got {tuple(compressed.shape)}")
    bits = 1 << torch.arange(8, dtype=torch.int32, device=bitmask.device)
    keep = ((bitmask.to(torch.int32).unsqueeze(-1) & bits) != 0).reshape(rows, -1)[:, :cols]
    count = keep.reshape(rows, cols // 4, 4).sum(-1)
    if (count != 2).any():
        row, group = divmod(int((count != 2).flatten().nonzero()[0]), cols // 4)
        raise ValueError(
            f"bitmask is not 2:4: row {row}, columns {4 * group}..{4 * group + 3} have "
            f"{int(count[row, group])} bits set (expected exactly 2)"
        )
    p0, p1 = positions_from_keep(keep)
    return compressed.clone(), pack_nibbles(p0 | (p1 << 2))


# ----------------------------------------------------------------------------------------------------------
# PyTorch semi-structured (CUTLASS and cuSPARSELt)
# ----------------------------------------------------------------------------------------------------------


def _cutlass_offsets(rows: int, words: int, device: torch.device) -> torch.Tensor:
    # PyTorch's own reordering (CUTLASS's ColumnMajorInterleaved<2> metadata tiles), so that the layout
    # always matches the installed torch.
    from torch.sparse._semi_structured_conversions import _calculate_meta_reordering_scatter_offsets

    return _calculate_meta_reordering_scatter_offsets(rows, words, torch.int16, device)


def _check_cutlass_shape(rows: int, cols: int) -> None:
    if rows % 32 or cols % 64:
        raise ValueError(
            f"PyTorch's CUTLASS 2:4 layout needs out_features % 32 == 0 and in_features % 64 == 0, "
            f"got {rows} x {cols}"
        )


def to_cutlass_layout(values: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(packed, meta_reordered)`` as PyTorch's ``SparseSemiStructuredTensorCUTLASS`` stores them."""
    rows, cols = check_compressed(values, meta)
    _check_cutlass_shape(rows, cols)
    words = meta.shape[1]
    reordered = torch.empty(rows * words, dtype=torch.int16, device=meta.device)
    reordered.scatter_(0, _cutlass_offsets(rows, words, meta.device), meta.reshape(-1))
    return values.contiguous(), reordered.view(rows, words)


def from_cutlass_layout(
    packed: torch.Tensor, meta_reordered: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`to_cutlass_layout`."""
    if packed.dim() != 2 or meta_reordered.dim() != 2 or meta_reordered.dtype != torch.int16:
        raise ValueError("expected 2-D packed values and 2-D int16 CUTLASS metadata")
    rows, cols = packed.shape[0], packed.shape[1] * 2
    _check_cutlass_shape(rows, cols)
    if tuple(meta_reordered.shape) != meta_shape(rows, cols):
        raise ValueError(
            f"CUTLASS metadata has shape {tuple(meta_reordered.shape)}, expected {meta_shape(rows, cols)}"
        )
    words = meta_reordered.shape[1]
    meta = meta_reordered.reshape(-1).gather(0, _cutlass_offsets(rows, words, meta_reordered.device))
    return packed.contiguous(), meta.view(rows, words)


def semi_structured_reason(device: torch.device | str) -> str | None:
    """``None`` when PyTorch's semi-structured sparse tensors work on ``device``, else why not."""
    device = torch.device(device)
    if not hasattr(torch.sparse, "SparseSemiStructuredTensor"):
        return f"torch {torch.__version__} has no torch.sparse.SparseSemiStructuredTensor"
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"PyTorch's semi-structured sparse tensors need a CUDA device, got {device}"
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 0):
        return f"semi-structured sparsity needs compute capability 8.0+, got {capability}"
    return None


def to_torch_semi_structured(
    values: torch.Tensor, meta: torch.Tensor, *, backend: str = "auto"
) -> torch.Tensor:
    """A ``torch.sparse.SparseSemiStructuredTensor`` holding the same weight.

    ``backend``: ``"cutlass"`` (built from the words, positions preserved), ``"cusparselt"`` (through the
    dense matrix) or ``"auto"`` (cuSPARSELt when PyTorch has it, else CUTLASS). Raises ``RuntimeError`` where
    PyTorch has no semi-structured support for the device (CPU included).
    """
    rows, cols = check_compressed(values, meta)
    reason = semi_structured_reason(values.device)
    if reason is not None:
        raise RuntimeError(reason)
    if values.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"semi-structured conversion supports fp16 and bf16 values, got {values.dtype}")
    if backend == "auto":
        backend = "cusparselt" if torch.backends.cusparselt.is_available() else "cutlass"
    if backend == "cutlass":
        packed, meta_reordered = to_cutlass_layout(values, meta)
        return torch.sparse.SparseSemiStructuredTensorCUTLASS(
            torch.Size([rows, cols]),
            packed=packed,
            meta=meta_reordered,
            packed_t=None,
            meta_t=None,
            compressed_swizzled_bitmask=None,
        )
    if backend == "cusparselt":
        return torch.sparse.SparseSemiStructuredTensorCUSPARSELT.from_dense(decompress_24(values, meta))
    raise ValueError(f"backend must be 'auto', 'cutlass' or 'cusparselt', got {backend!r}")


def from_torch_semi_structured(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, meta)`` of a ``SparseSemiStructuredTensor`` (CUTLASS: from its words; else via dense)."""
    cutlass = getattr(torch.sparse, "SparseSemiStructuredTensorCUTLASS", None)
    if cutlass is not None and isinstance(tensor, cutlass):
        packed, meta_reordered = tensor.packed, tensor.meta
        if packed is not None and meta_reordered is not None and meta_reordered.dim() == 2:
            values, meta = from_cutlass_layout(packed, meta_reordered)
            check_meta(meta, 2 * values.shape[1])
            return values, meta
    return compress_24(tensor.to_dense())
