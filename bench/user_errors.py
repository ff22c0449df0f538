"""The errors a user's input causes, which the CLI prints in one line and exits with status 2.

Only the project's own error classes are here: a ``ValueError`` (or any other exception) raised by a bug
inside the library still shows its traceback.
"""

from __future__ import annotations

import errno

from polysparse.bench.plans import BenchSetupError, StudyInputError
from polysparse.bench.studies.cells import StaleCellsError
from polysparse.runtime.checkpoint import CheckpointError
from polysparse.sparsify.checkpointing import (
    CorruptCheckpointError,
    ResumeMismatchError,
    WorkFolderLockedError,
)
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.corpora import (
    DatasetUnavailableError,
    EmptyCorpusError,
    MissingDependencyError,
    SourceSpecError,
    TextEncodingError,
    TextFormatError,
    UnknownLanguageError,
)
from polysparse.sparsify.corpora.gettext_mo import MoFormatError
from polysparse.sparsify.driver import IndivisibleLayerError
from polysparse.sparsify.loading import ModelLoadError, SequenceTooLongError
from polysparse.sparsify.methods import HessianError
from polysparse.sparsify.model_graph import NoDecoderBlocksError
from polysparse.sparsify.output import OutputExistsError, OutputLocationError, ReportError
from polysparse.sparsify.stats import NonFiniteError
from polysparse.sparsify.streaming import StreamingUnsupportedError
from polysparse.sparsify.tasks import TaskError

USER_ERRORS: tuple[type[BaseException], ...] = (
    BenchSetupError,
    CheckpointError,
    ConfigError,
    CorruptCheckpointError,
    DatasetUnavailableError,
    EmptyCorpusError,
    HessianError,
    IndivisibleLayerError,
    MissingDependencyError,
    ModelLoadError,
    MoFormatError,
    NoDecoderBlocksError,
    NonFiniteError,
    OutputExistsError,
    OutputLocationError,
    ReportError,
    ResumeMismatchError,
    SequenceTooLongError,
    SourceSpecError,
    StaleCellsError,
    StreamingUnsupportedError,
    StudyInputError,
    TaskError,
    TextEncodingError,
    TextFormatError,
    UnknownLanguageError,
    WorkFolderLockedError,
)
"""Errors caused by the user's input: the CLI prints them in one line and exits with status 2."""

_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# safetensors reports a failed write as a SafetensorError holding the OS message, not as an OSError.
_NO_SPACE_MESSAGES = ("No space left", "File too large", "Disk quota exceeded", "FileTooLarge", "StorageFull")


def out_of_space(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is a write that found no room: a full disk, a
    quota, a file-size limit (``ulimit -f``). Not the user's input, but theirs to fix, so the CLI says so in
    one line (exit status 2) instead of a traceback."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE_ERRNOS:
            return True
        if any(text in str(error) for text in _NO_SPACE_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


__all__ = ["USER_ERRORS", "out_of_space"]
