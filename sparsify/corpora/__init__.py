"""Calibration and evaluation text: where it comes from and which language it is in.

A *source spec* such as ``text:data/*.txt:de`` names a source and its argument; every source yields
:class:`Document` objects tagged with an ISO 639-1 language code. Nothing here tokenizes: token windows are
built from documents in :mod:`polysparse.sparsify.calibration`.
"""

from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError, ParallelPair
from polysparse.sparsify.corpora.languages import UnknownLanguageError, language_name, normalize_language
from polysparse.sparsify.corpora.registry import SOURCES, load_documents, split_by_document

__all__ = [
    "SOURCES",
    "Document",
    "EmptyCorpusError",
    "ParallelPair",
    "UnknownLanguageError",
    "language_name",
    "load_documents",
    "normalize_language",
    "split_by_document",
]
