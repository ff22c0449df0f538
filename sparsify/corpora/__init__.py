"""Calibration and evaluation text: where it comes from and which language it is in.

A *source spec* such as ``handbook:de`` or ``text:data/*.txt:de`` names a source and its argument (parsed
once into a :class:`SourceSpec`, which the loaders take; likewise :class:`ParallelSpec`); every
source yields :class:`Document` objects tagged with an ISO 639-1 language code. Parallel specs such as
``gettext:de`` (German -> English) or ``handbook:en->ja`` give :class:`ParallelPair` objects, from which
:func:`translation_prompts` builds few-shot translation demonstrations. Nothing here tokenizes: token
windows are built from documents in :mod:`polysparse.sparsify.calibration`. Nothing here imports torch.
"""

from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError, ParallelPair, SourceSpecError
from polysparse.sparsify.corpora.gettext_mo import load_parallel_pairs
from polysparse.sparsify.corpora.hf_datasets import DatasetUnavailableError, MissingDependencyError
from polysparse.sparsify.corpora.languages import (
    Language,
    UnknownLanguageError,
    known_languages,
    language_name,
    normalize_language,
)
from polysparse.sparsify.corpora.parallel import (
    PARALLEL_SOURCES,
    load_parallel,
    pair_document_ids,
    parallel_pairs,
    translation_prompts,
)
from polysparse.sparsify.corpora.registry import (
    SOURCES,
    CorpusInfo,
    available_corpora,
    load_documents,
    missing_corpora_hint,
    split_by_document,
)
from polysparse.sparsify.corpora.specs import ParallelSpec, SourceSpec
from polysparse.sparsify.corpora.text_files import TextEncodingError, TextFormatError, text_encoding

__all__ = [
    "PARALLEL_SOURCES",
    "SOURCES",
    "CorpusInfo",
    "DatasetUnavailableError",
    "Document",
    "EmptyCorpusError",
    "Language",
    "MissingDependencyError",
    "ParallelPair",
    "ParallelSpec",
    "SourceSpec",
    "SourceSpecError",
    "TextEncodingError",
    "TextFormatError",
    "UnknownLanguageError",
    "available_corpora",
    "known_languages",
    "language_name",
    "load_documents",
    "load_parallel",
    "load_parallel_pairs",
    "missing_corpora_hint",
    "normalize_language",
    "pair_document_ids",
    "parallel_pairs",
    "split_by_document",
    "text_encoding",
    "translation_prompts",
]
