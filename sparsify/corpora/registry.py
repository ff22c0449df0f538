"""Source specs (``name:argument``) and the deterministic calibration / evaluation split."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError
from polysparse.sparsify.corpora.text_files import load_text_documents

SOURCES: dict[str, Callable[[str], list[Document]]] = {
    "text": load_text_documents,
}
"""Every source by the name used in specs; each takes the spec's argument and returns documents."""


def load_documents(spec: str) -> list[Document]:
    """Documents for one source spec such as ``text:corpus/*.txt:de``."""
    name, sep, argument = spec.partition(":")
    if not sep or not argument:
        raise ValueError(f"source spec {spec!r} is not of the form NAME:ARGUMENT (e.g. text:notes.txt:de)")
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r} in {spec!r}; known sources: {', '.join(sorted(SOURCES))}")
    documents = SOURCES[name](argument)
    if not documents:
        raise EmptyCorpusError(f"{spec}: no documents")
    return documents


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_document(
    documents: list[Document], eval_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """Split into (calibration, evaluation) by document id: deterministic, disjoint, order kept.

    A document goes to evaluation when the hash of ``(seed, doc_id)`` falls below ``eval_fraction``; with
    at least two documents each side gets at least one.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    if len(documents) < 2:
        raise EmptyCorpusError(
            f"need at least two documents to split calibration from evaluation text, got {len(documents)}"
        )
    ranked = sorted(documents, key=lambda d: _unit_hash(d.doc_id, seed))
    n_eval = min(max(1, round(eval_fraction * len(documents))), len(documents) - 1)
    eval_ids = {d.doc_id for d in ranked[:n_eval]}
    calibration = [d for d in documents if d.doc_id not in eval_ids]
    evaluation = [d for d in documents if d.doc_id in eval_ids]
    return calibration, evaluation
