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

from polysparse.runtime.checkpoint.errors import (
    CheckpointError,
    CheckpointExistsError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
)
from polysparse.runtime.checkpoint.exporting import export
from polysparse.runtime.checkpoint.files import TensorInfo, file_digest, read_header
from polysparse.runtime.checkpoint.load import (
    checkpoint_summary,
    empty_weights,
    is_sparse_checkpoint,
    load_sparse,
    padded_meta_shape,
    read_sparsity_config,
)
from polysparse.runtime.checkpoint.metadata import (
    EXPORT_FORMATS,
    FORMAT_BITMASK,
    FORMAT_DENSE,
    FORMAT_NATIVE,
    FORMAT_VERSION,
    HF_WEIGHTS,
    NATIVE_WEIGHTS,
    READABLE_VERSIONS,
    SparsityMetadata,
    describe_calibration,
)
from polysparse.runtime.checkpoint.save import save_sparse

__all__ = [
    "EXPORT_FORMATS",
    "FORMAT_BITMASK",
    "FORMAT_DENSE",
    "FORMAT_NATIVE",
    "FORMAT_VERSION",
    "HF_WEIGHTS",
    "NATIVE_WEIGHTS",
    "READABLE_VERSIONS",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "NotSparse24Error",
    "SparsityMetadata",
    "TensorInfo",
    "checkpoint_summary",
    "describe_calibration",
    "empty_weights",
    "export",
    "file_digest",
    "is_sparse_checkpoint",
    "load_sparse",
    "padded_meta_shape",
    "read_header",
    "read_sparsity_config",
    "save_sparse",
]
