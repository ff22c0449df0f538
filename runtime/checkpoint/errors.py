"""The errors of sparse checkpoints: every one is a :class:`CheckpointError` (a ``ValueError``)."""

from __future__ import annotations


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
