"""``hf:DATASET[:CONFIG[:SPLIT]]:LANG``: records of a Hugging Face ``datasets`` dataset (optional).

For users who have a dataset at hand (mC4, CulturaX, FLORES-200, their own):
``hf:allenai/c4:de:train[:2000]:de``, ``hf:openlanguagedata/flores_plus:deu_Latn:dev:de``. LANG is the
language the text is in (the documents' tag; the dataset's config usually selects it). The split defaults
to ``train``; split slicing such as ``train[:1000]`` keeps big datasets small. Each record's text field
(``text``, ``sentence``, ``content``, ``document``, else the first string column) is one document,
``doc_id`` ``hf/DATASET/CONFIG/SPLIT/INDEX``.

``datasets`` is not a dependency of polysparse and is imported only when such a spec is loaded: without it
the source raises :class:`MissingDependencyError`; a dataset that cannot be loaded (offline with
``HF_DATASETS_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` and not in the local cache, misspelt, gated) raises
:class:`DatasetUnavailableError`.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from polysparse.sparsify.corpora.documents import (
    Document,
    EmptyCorpusError,
    MissingDependencyError,
    SourceSpecError,
)
from polysparse.sparsify.corpora.languages import UNDETERMINED, Language

if TYPE_CHECKING:
    from polysparse.sparsify.corpora.specs import SourceSpec

NAME = "hf"
TEXT_FIELDS = ("text", "sentence", "content", "document")


class DatasetUnavailableError(RuntimeError):
    """The dataset could not be loaded (not cached while offline, unknown name, no access)."""


def split_hf_argument(argument: str) -> tuple[str, Language]:
    """``DATASET[:CONFIG[:SPLIT]]:LANG`` -> (``DATASET[:CONFIG[:SPLIT]]``, the language, known)."""
    head, sep, language = argument.rpartition(":")
    if not sep or not head or not language:
        raise SourceSpecError(
            f"hf:{argument}: expected hf:DATASET[:CONFIG[:SPLIT]]:LANG (e.g. hf:allenai/c4:de:train:de)"
        )
    return head, Language.parse(language).known()


def _dataset_config_split(head: str) -> tuple[str, str | None, str]:
    parts = head.split(":", 2)
    dataset = parts[0]
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return dataset, config, split


def parse_hf_argument(argument: str) -> tuple[str, str | None, str, str]:
    """``DATASET[:CONFIG[:SPLIT]]:LANG`` -> (dataset, config or None, split, ISO 639-1 language)."""
    head, language = split_hf_argument(argument)
    return (*_dataset_config_split(head), language.code)


def _import_datasets():
    try:
        return importlib.import_module("datasets")
    except ImportError as error:
        raise MissingDependencyError(
            "the hf: source needs the optional package `datasets` (pip install datasets); the offline "
            "sources handbook:, install-guide:, manpages:, gettext: and text: need nothing extra"
        ) from error


def load_hf_documents(spec: SourceSpec) -> list[Document]:
    """One document per record of the dataset split a parsed ``hf:`` spec names (see the module docstring)."""
    argument, lang = spec.argument, spec.language.code if spec.language is not None else UNDETERMINED
    dataset_name, config, split = _dataset_config_split(spec.location)
    datasets = _import_datasets()
    try:
        dataset = datasets.load_dataset(dataset_name, config, split=split)
    except Exception as error:  # datasets raises many kinds (ConnectionError, FileNotFoundError, ...)
        offline = any(
            os.environ.get(v, "") not in ("", "0") for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
        )
        reason = (
            "offline mode is on and it is not in the local datasets cache"
            if offline
            else "it is not in the local cache and the Hugging Face hub could not provide it"
        )
        raise DatasetUnavailableError(
            f"hf:{argument}: dataset {dataset_name!r} (config {config}, split {split}) could not be loaded: "
            f"{reason} ({type(error).__name__}: {error})"
        ) from error
    columns = list(getattr(dataset, "column_names", None) or [])
    field = next((f for f in TEXT_FIELDS if f in columns), None)
    if field is None:
        features = getattr(dataset, "features", {}) or {}
        field = next((c for c in columns if getattr(features.get(c), "dtype", None) == "string"), None)
    if field is None:
        raise SourceSpecError(f"hf:{argument}: no text column among {columns}")
    prefix = f"{NAME}/{dataset_name}/{config or '-'}/{split}"
    documents = [
        Document(text=text.strip(), lang=lang, source=NAME, doc_id=f"{prefix}/{i}")
        for i, text in enumerate(dataset[field])
        if isinstance(text, str) and text.strip()
    ]
    if not documents:
        raise EmptyCorpusError(f"hf:{argument}: no text in column {field!r}")
    return documents
