"""The errors a user's input causes, which the CLI prints in one line and exits with status 2.

Only the project's own error classes are here: a ``ValueError`` (or any other exception) raised by a bug
inside the library still shows its traceback.
"""

from __future__ import annotations

from polysparse.bench.plans import BenchSetupError, StudyInputError
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
from polysparse.sparsify.output import OutputExistsError, OutputLocationError
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
    ResumeMismatchError,
    SequenceTooLongError,
    SourceSpecError,
    StreamingUnsupportedError,
    StudyInputError,
    TaskError,
    TextEncodingError,
    TextFormatError,
    UnknownLanguageError,
    WorkFolderLockedError,
)
"""Errors caused by the user's input: the CLI prints them in one line and exits with status 2."""

__all__ = ["USER_ERRORS"]
