"""Source specs (``name:argument``), what is installed, and the deterministic calibration / evaluation split.

Sources (see each module): ``text:PATH[:LANG]``, ``handbook:LANG``, ``install-guide:LANG``, ``manpages:LANG``,
``gettext:LANG``, ``fortunes:LANG``, ``hf:DATASET[:CONFIG[:SPLIT]]:LANG``. Parallel text and translation
prompts are in :mod:`polysparse.sparsify.corpora.parallel`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polysparse.sparsify.corpora import fortunes, gettext_mo, handbook, install_guide, manpages
from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError, SourceSpecError
from polysparse.sparsify.corpora.hf_datasets import load_hf_documents
from polysparse.sparsify.corpora.html_book import book_statistics
from polysparse.sparsify.corpora.html_book import installed_locales as book_locales
from polysparse.sparsify.corpora.languages import (
    Language,
    language_name,
    locales_by_language,
    normalize_language,
)
from polysparse.sparsify.corpora.text_files import load_text_documents

if TYPE_CHECKING:
    from polysparse.sparsify.corpora.specs import SourceSpec


def _by_language(load: Callable[[Language], list[Document]]) -> Callable[[SourceSpec], list[Document]]:
    """An installed source's loader, given the parsed spec: its argument is the language."""

    def load_spec(spec: SourceSpec) -> list[Document]:
        assert spec.language is not None  # SourceSpec.of parses every installed source's argument
        return load(spec.language)

    return load_spec


SOURCES: dict[str, Callable[[SourceSpec], list[Document]]] = {
    "text": load_text_documents,
    "handbook": _by_language(handbook.load_handbook_documents),
    "install-guide": _by_language(install_guide.load_install_guide_documents),
    "manpages": _by_language(manpages.load_manpage_documents),
    "gettext": _by_language(gettext_mo.load_gettext_documents),
    "fortunes": _by_language(fortunes.load_fortune_documents),
    "hf": load_hf_documents,
}
"""Every source by the name used in specs; each takes the parsed spec and returns documents."""

INSTALLED_SOURCES = ("handbook", "install-guide", "manpages", "gettext", "fortunes")
"""The sources that read Debian packages installed on this machine (listed by :func:`available_corpora`)."""


def load_documents(spec: SourceSpec) -> list[Document]:
    """Documents for one parsed source spec (``SourceSpec.parse("handbook:de")``, ``text:a/*.txt:de``)."""
    if spec.source not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise SourceSpecError(f"unknown source {spec.source!r} in {str(spec)!r}; known sources: {known}")
    documents = SOURCES[spec.source](spec)
    if not documents:
        raise EmptyCorpusError(f"{spec}: no documents")
    return documents


@dataclass(frozen=True)
class CorpusInfo:
    """One source and language available on this machine.

    ``documents`` and ``text_bytes``: handbook and guide, exact (the full extraction); the others, estimates
    computed without the full extraction (loading the source gives the exact figures). Man pages: page
    files and roff source size (about twice the prose extracted). gettext: catalogues and the size of all
    their translations (about 10% above the messages kept).
    """

    source: str
    lang: str
    name: str
    documents: int
    text_bytes: int
    package: str
    locales: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.source}:{self.lang}"


def _locales_by_language(locales: list[str]) -> dict[str, tuple[str, ...]]:
    return {lang: tuple(found) for lang, found in locales_by_language(locales).items()}


def _source_statistics(source: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[str, ...]]]:
    if source in ("handbook", "install-guide"):
        book = handbook.handbook() if source == "handbook" else install_guide.install_guide()
        return book_statistics(book), _locales_by_language(book_locales(book))
    if source == "manpages":
        return manpages.quick_statistics(), _locales_by_language(manpages.installed_locales())
    if source == "gettext":
        return gettext_mo.quick_statistics(), _locales_by_language(gettext_mo.installed_locales())
    if source == "fortunes":
        return fortunes.quick_statistics(), _locales_by_language(fortunes.installed_locales())
    raise SourceSpecError(
        f"{source!r} is not an installed source; installed sources: {', '.join(INSTALLED_SOURCES)}"
    )


def _package(source: str, lang: str) -> str:
    if source == "handbook":
        return handbook.PACKAGE
    if source == "install-guide":
        return install_guide.PACKAGE
    if source == "manpages":
        return manpages.PACKAGES.get(lang, "(translations shipped by individual packages)")
    if source == "fortunes":
        return fortunes.PACKAGES.get(lang, "(no Debian package known)")
    return "(catalogues shipped by each program's package)"


def available_corpora(sources: tuple[str, ...] | list[str] | None = None) -> list[CorpusInfo]:
    """Every installed source and language on this machine, with document and byte counts (see
    :class:`CorpusInfo`): the books are extracted in full, man pages and gettext catalogues only scanned;
    cached per process.
    """
    found = []
    for source in sources or INSTALLED_SOURCES:
        stats, locales = _source_statistics(source)
        for lang, (documents, size) in sorted(stats.items()):
            found.append(
                CorpusInfo(
                    source=source,
                    lang=lang,
                    name=language_name(lang),
                    documents=documents,
                    text_bytes=size,
                    package=_package(source, lang),
                    locales=locales.get(lang, ()),
                )
            )
    return found


def missing_corpora_hint(source: str, lang: str | None = None) -> str:
    """What to install so that ``source`` (for ``lang``) has text on this machine."""
    if source in ("handbook", "install-guide"):
        package = handbook.PACKAGE if source == "handbook" else install_guide.PACKAGE
        book = handbook.handbook() if source == "handbook" else install_guide.install_guide()
        have = sorted(_locales_by_language(book_locales(book)))
        if lang is not None and have:
            return (
                f"{source}: {package} is installed but has no {language_name(lang)} "
                f"({normalize_language(lang)}) edition; it has: {', '.join(have)}"
            )
        return f"{source}: install the Debian package {package} (sudo apt-get install {package})"
    if source == "manpages":
        if lang is None:
            return (
                "manpages: install man pages of a language, e.g. sudo apt-get install manpages-de manpages-fr"
            )
        iso = normalize_language(lang)
        package = manpages.PACKAGES.get(iso)
        if package is None:
            return (
                f"manpages: Debian has no manpages-{iso} package; {language_name(iso)} man pages come only "
                f"with the programs that ship them"
            )
        return f"manpages: install the Debian package {package} (sudo apt-get install {package})"
    if source == "gettext":
        return (
            "gettext: catalogues come with each program's package (coreutils, apt, glib, gtk...); install "
            "programs translated into the language, and make sure dpkg does not drop /usr/share/locale "
            "(check path-exclude lines in /etc/dpkg/dpkg.cfg.d/, as slim container images set)"
        )
    if source == "fortunes":
        package = fortunes.PACKAGES.get(normalize_language(lang)) if lang is not None else "fortunes"
        if package is None:
            return f"fortunes: Debian has no fortune collection in {language_name(lang)}"
        return f"fortunes: install the Debian package {package} (sudo apt-get install {package})"
    if source == "hf":
        return "hf: pip install datasets, and have the dataset in the local cache when offline"
    if source == "text":
        return "text: point the spec at your own .txt or .jsonl files (text:PATH[:LANG])"
    raise SourceSpecError(f"unknown source {source!r}; known sources: {', '.join(sorted(SOURCES))}")


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
