"""A book installed as HTML pages in one folder per locale (the handbook, the installation guide).

Rules shared by ``handbook:LANG`` and ``install-guide:LANG``:

- One :class:`Document` per page (chapter or section file) whose ``doc_id`` is ``BOOK/LOCALE/PAGE``
  (``handbook/de-DE/sect.apt-get.html``): stable wherever the same package version is installed.
- Only a language's own paragraphs count: a paragraph identical (after whitespace normalisation) to any
  paragraph of the English edition is an untranslated original and is English, so it is dropped from every
  other language; so is a paragraph with no letter of its script in a language not written in Latin
  script, and, on pages with as many paragraphs as the English page, a paragraph that is a near copy of the
  English paragraph at the same place (:func:`~polysparse.sparsify.corpora.prose.near_copy`: the English
  sentence with only a cross-reference translated). Paragraphs are deduplicated within a language (first
  occurrence in page order kept), and pages left without paragraphs give no document.
- Parallel pairs come from pages present in both languages whose paragraph counts (before any filtering)
  match: paragraph *i* pairs with paragraph *i*. Pages whose counts differ are skipped whole, pairs where
  either non-English side is untranslated (by the rules above) or where the two sides are near copies of
  each other are dropped, and duplicate pairs are kept once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from polysparse.sparsify.corpora.documents import Document, ParallelPair, SourceSpecError
from polysparse.sparsify.corpora.html_prose import extract_paragraphs
from polysparse.sparsify.corpora.languages import (
    Language,
    UnknownLanguageError,
    locale_language,
    locales_by_language,
    select_locales,
)
from polysparse.sparsify.corpora.prose import (
    ParagraphFilter,
    has_letters,
    lacks_native_script,
    near_copy,
)


@dataclass(frozen=True)
class HtmlBook:
    """Where a book is installed and what to leave out of it."""

    name: str
    """Source name in specs (``handbook``) and first part of every ``doc_id``."""
    package: str
    """Debian package that installs it."""
    root: str
    """Folder holding one subfolder of ``*.html`` pages per locale."""
    excluded_pages: frozenset[str] = frozenset()
    """Pages that are not prose of the book (a licence text)."""


def installed_locales(book: HtmlBook) -> list[str]:
    """Locale folders of the book that hold at least one page."""
    root = Path(book.root)
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and locale_language(entry.name) and any(entry.glob("*.html"))
    )


def _page_names(book: HtmlBook, locale: str) -> list[str]:
    folder = Path(book.root) / locale
    return sorted(p.name for p in folder.glob("*.html") if p.name not in book.excluded_pages)


@lru_cache(maxsize=64)
def _locale_pages(book: HtmlBook, locale: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(page name, paragraphs in order) for every page of one locale; cached per process."""
    folder = Path(book.root) / locale
    pages = []
    for name in _page_names(book, locale):
        text = (folder / name).read_bytes().decode("utf-8", errors="replace")
        pages.append((name, tuple(extract_paragraphs(text))))
    return tuple(pages)


def _english_locales(book: HtmlBook) -> list[str]:
    """The English edition's locale folders; none when it is not installed (then nothing is excluded)."""
    try:
        return select_locales("en", installed_locales(book), book.name)[1]
    except UnknownLanguageError:
        return []


@lru_cache(maxsize=8)
def english_paragraphs(book: HtmlBook) -> frozenset[str]:
    """Every paragraph of the English edition (whitespace-normalised); cached per process."""
    return frozenset(paragraph for paragraphs in english_pages(book).values() for paragraph in paragraphs)


@lru_cache(maxsize=8)
def english_pages(book: HtmlBook) -> dict[str, tuple[str, ...]]:
    """Paragraphs of each page of the English edition (first English locale holding the page)."""
    pages: dict[str, tuple[str, ...]] = {}
    for locale in _english_locales(book):
        for page, paragraphs in _locale_pages(book, locale):
            pages.setdefault(page, paragraphs)
    return pages


def _near_english(paragraphs: tuple[str, ...], english: tuple[str, ...] | None) -> list[bool]:
    """Per paragraph: a near copy of the English paragraph at the same place (when the counts match)."""
    if english is None or len(english) != len(paragraphs):
        return [False] * len(paragraphs)
    return [near_copy(p, e) for p, e in zip(paragraphs, english, strict=True)]


def book_documents(book: HtmlBook, language: str | Language) -> list[Document]:
    """The documents of one language (``de``, ``de-DE``, ``German``, ``zh-TW``); see the module rules."""
    lang, locales = select_locales(language, installed_locales(book), book.name)
    english = english_paragraphs(book) if lang != "en" else frozenset()
    english_by_page = english_pages(book) if lang != "en" else {}
    keep = ParagraphFilter(lang, english)
    documents = []
    for locale in locales:
        for page, paragraphs in _locale_pages(book, locale):
            copied = _near_english(paragraphs, english_by_page.get(page))
            kept = keep.filter(p for p, c in zip(paragraphs, copied, strict=True) if not c)
            if kept:
                documents.append(
                    Document(
                        text="\n\n".join(kept),
                        lang=lang,
                        source=book.name,
                        doc_id=f"{book.name}/{locale}/{page}",
                    )
                )
    return documents


def book_parallel(
    book: HtmlBook, src_language: str | Language, tgt_language: str | Language
) -> list[ParallelPair]:
    """Paragraph pairs of two languages aligned by page and paragraph order where counts match."""
    installed = installed_locales(book)
    src_lang, src_locales = select_locales(src_language, installed, book.name)
    tgt_lang, tgt_locales = select_locales(tgt_language, installed, book.name)
    if src_lang == tgt_lang:
        raise SourceSpecError(f"{book.name}: source and target language are both {src_lang}")
    english = english_paragraphs(book)
    english_by_page = english_pages(book)

    def untranslated(paragraph: str, lang: str) -> bool:
        if not has_letters(paragraph):
            return True
        return lang != "en" and (paragraph in english or lacks_native_script(paragraph, lang))

    pairs: list[ParallelPair] = []
    seen: set[tuple[str, str]] = set()
    for src_locale in src_locales:
        src_pages = dict(_locale_pages(book, src_locale))
        for tgt_locale in tgt_locales:
            for page, tgt_paragraphs in _locale_pages(book, tgt_locale):
                src_paragraphs = src_pages.get(page)
                if src_paragraphs is None or len(src_paragraphs) != len(tgt_paragraphs):
                    continue
                english_page = english_by_page.get(page)
                src_copied = _near_english(src_paragraphs, english_page) if src_lang != "en" else None
                tgt_copied = _near_english(tgt_paragraphs, english_page) if tgt_lang != "en" else None
                for i, (src, tgt) in enumerate(zip(src_paragraphs, tgt_paragraphs, strict=True)):
                    if (src, tgt) in seen or near_copy(src, tgt):
                        continue
                    if untranslated(src, src_lang) or untranslated(tgt, tgt_lang):
                        continue
                    if (src_copied and src_copied[i]) or (tgt_copied and tgt_copied[i]):
                        continue
                    seen.add((src, tgt))
                    pairs.append(
                        ParallelPair(
                            src=src,
                            tgt=tgt,
                            src_lang=src_lang,
                            tgt_lang=tgt_lang,
                            pair_id=f"{book.name}/{src_locale}+{tgt_locale}/{page}#{i}",
                        )
                    )
    return pairs


@lru_cache(maxsize=8)
def book_statistics(book: HtmlBook) -> dict[str, tuple[int, int]]:
    """(documents, UTF-8 bytes of their text) per ISO 639-1 language, from the full extraction.

    Exact, and cached per process with the parsed pages, which later loads of the book reuse.
    """
    stats = {}
    for lang in locales_by_language(installed_locales(book)):
        documents = book_documents(book, lang)
        if documents:
            stats[lang] = (len(documents), sum(len(d.text.encode()) for d in documents))
    return stats


def resolve_root(environment_variable: str, default: str) -> str:
    """A book's root folder: the environment variable when set, else the Debian location."""
    return os.environ.get(environment_variable) or default
