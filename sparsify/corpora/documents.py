"""The units every text source yields."""

from __future__ import annotations

from dataclasses import dataclass


class EmptyCorpusError(ValueError):
    """A source spec matched no usable text."""


class SourceSpecError(ValueError):
    """A text source spec that does not parse, or names a source or option that does not exist."""


class MissingDependencyError(ImportError):
    """A package that a source (or the language table) needs is not installed."""


@dataclass(frozen=True)
class Document:
    """One coherent piece of text (a file, a page, a record) in one language.

    ``doc_id`` is stable across runs and machines with the same installed files; the calibration /
    evaluation split is decided from it, so no document is ever on both sides.
    """

    text: str
    lang: str
    source: str
    doc_id: str


@dataclass(frozen=True)
class ParallelPair:
    """A sentence or paragraph and its translation (``src`` in ``src_lang``, ``tgt`` in ``tgt_lang``)."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    pair_id: str
