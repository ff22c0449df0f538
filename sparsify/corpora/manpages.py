"""``manpages:LANG``: translated man pages under ``/usr/share/man/<locale>/man<N>/`` (gzipped roff).

Locales: every folder of ``/usr/share/man`` named after a language with an ISO 639-1 code (``de``, ``fr``,
``ja``, ``pl``, ``ru``, ``uk``, ``es``, ...). Regional folders join their language: ``zh_CN`` and ``zh_TW``
(simplified and traditional script) are both ``zh``, ``pt`` and ``pt_BR`` both ``pt``; ask for ``zh-TW`` or
``pt-BR`` to get just one. Encoding suffixes (``ja.UTF-8``) are ignored. ``manpages:en`` reads the English
originals in ``/usr/share/man/man<N>/`` (many thousands of pages: slow).

One :class:`Document` per page file (symbolic links, which are aliases, and ``.so`` redirections, which hold
no text, give none), ``doc_id`` ``manpages/<locale>/man<N>/<page>`` (``manpages/de/man1/ls.1``). Prose as
in :mod:`polysparse.sparsify.corpora.roff`. A paragraph identical to one of the English original of the same
page (when installed) is English and dropped, as is a paragraph without a letter of its script in a language
not written in Latin script (the Japanese pages keep many English paragraphs; for these languages the
script rule replaces the comparison, which would double the parsing time); paragraphs are deduplicated
within the language. Text comes from the Debian packages ``manpages-de``, ``manpages-fr``, ... and from the
translations shipped by individual packages (``man-db``, ``dpkg``, ``apt``...).
"""

from __future__ import annotations

import gzip
import os
import struct
from functools import lru_cache
from pathlib import Path

from polysparse.sparsify.corpora.documents import Document
from polysparse.sparsify.corpora.languages import (
    NON_LATIN_SCRIPT,
    Language,
    locale_language,
    locales_by_language,
    select_locales,
)
from polysparse.sparsify.corpora.prose import ParagraphFilter
from polysparse.sparsify.corpora.roff import roff_paragraphs

NAME = "manpages"
DEFAULT_ROOT = "/usr/share/man"
ROOT_VARIABLE = "POLYSPARSE_MAN_ROOT"
_PACKAGED = (
    "cs",
    "da",
    "de",
    "el",
    "es",
    "fi",
    "fr",
    "hu",
    "id",
    "it",
    "ja",
    "mk",
    "nb",
    "nl",
    "pl",
    "ro",
    "ru",
)
PACKAGES = {lang: f"manpages-{lang}" for lang in (*_PACKAGED, "sr", "sv", "tr", "uk", "vi", "zh")}
PACKAGES["pt"] = "manpages-pt-br"
PACKAGES["en"] = "manpages"
"""Debian package with the man pages of each language (``apt-get install manpages-de``)."""


def man_root(root: str | None = None) -> Path:
    return Path(root or os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)


def installed_locales(root: str | None = None) -> list[str]:
    """Locale folders under the man root that hold man page sections (``en`` for the root's own)."""
    base = man_root(root)
    if not base.is_dir():
        return []
    locales = [
        entry.name
        for entry in base.iterdir()
        if entry.is_dir() and locale_language(entry.name) and any(entry.glob("man*/"))
    ]
    if any(base.glob("man*/")):
        locales.append("en")
    return sorted(set(locales))


def _locale_folder(base: Path, locale: str) -> Path:
    return base if locale == "en" else base / locale


def _page_entries(folder: Path) -> list[tuple[str, int]]:
    """(path, file size) of the pages in a locale folder's ``man*`` sections, sorted; symbolic links (aliases)
    left out."""
    if not folder.is_dir():
        return []
    entries = []
    for section in os.scandir(folder):
        if section.name.startswith("man") and section.is_dir(follow_symlinks=False):
            entries += [
                (e.path, e.stat(follow_symlinks=False).st_size)
                for e in os.scandir(section.path)
                if e.is_file(follow_symlinks=False)
            ]
    return sorted(entries)


def _page_files(folder: Path) -> list[Path]:
    return [Path(path) for path, _ in _page_entries(folder)]


def _page_name(path: Path) -> str:
    """``man1/ls.1`` for ``.../man1/ls.1.gz``."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return f"{path.parent.name}/{name}"


def _read_page(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@lru_cache(maxsize=4096)
def _english_page(base: str, page: str) -> frozenset[str]:
    """Paragraphs of the English original of a page (``man1/ls.1``), empty when not installed."""
    folder = Path(base) / page.split("/")[0]
    for candidate in (folder / f"{page.split('/')[1]}.gz", folder / page.split("/")[1]):
        if candidate.is_file():
            return frozenset(roff_paragraphs(_read_page(candidate)))
    return frozenset()


def load_manpage_documents(language: str | Language, root: str | None = None) -> list[Document]:
    """One document per man page in ``language`` (``de``, ``zh_TW``, ``Japanese``); see the module rules."""
    base = man_root(root)
    lang, locales = select_locales(language, installed_locales(root), NAME)
    keep = ParagraphFilter(lang)
    # In a language written in another script, the script rule alone finds the English paragraphs.
    compare_with_english = lang != "en" and lang not in NON_LATIN_SCRIPT
    documents = []
    for locale in locales:
        for path in _page_files(_locale_folder(base, locale)):
            page = _page_name(path)
            paragraphs = roff_paragraphs(_read_page(path))
            if compare_with_english:
                keep.english = _english_page(str(base), page)
            kept = keep.filter(paragraphs)
            if kept:
                documents.append(
                    Document(text="\n\n".join(kept), lang=lang, source=NAME, doc_id=f"{NAME}/{locale}/{page}")
                )
    return documents


def _uncompressed_size(path: Path) -> int:
    """Size of a page's roff text, from the gzip trailer (no decompression)."""
    size = path.stat().st_size
    if not path.name.endswith(".gz") or size < 18:
        return size
    with path.open("rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


_SAMPLE = 64


@lru_cache(maxsize=4)
def _quick_statistics(base: str) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    for lang, locales in locales_by_language(installed_locales(base)).items():
        for locale in locales:
            entries = _page_entries(_locale_folder(Path(base), locale))
            if not entries:
                continue
            # Uncompressed size from the gzip trailers of a sample of pages, scaled to all of them.
            sample = entries[:: max(1, len(entries) // _SAMPLE)]
            ratio = sum(_uncompressed_size(Path(p)) for p, _ in sample) / max(
                1, sum(size for _, size in sample)
            )
            docs, size = stats.get(lang, (0, 0))
            stats[lang] = (docs + len(entries), size + round(ratio * sum(size for _, size in entries)))
    return stats


def quick_statistics(root: str | None = None) -> dict[str, tuple[int, int]]:
    """(page files, bytes of roff source) per language: an upper bound on documents and text, no parsing.

    The roff size is the compressed size scaled by the compression ratio of a sample of pages.
    """
    return _quick_statistics(str(man_root(root)))
