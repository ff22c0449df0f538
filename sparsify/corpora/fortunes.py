"""``fortunes:LANG``: the fortune-cookie collections of ``fortune`` (quotations, jokes, sayings, poems).

Text of another *kind* than every other installed source (which are all technical documentation or
software messages): short everyday prose, aphorisms and verse, for judging how a pruned model does on
text unlike its calibration. Debian installs the collections as plain text under
``/usr/share/games/fortunes/`` (``POLYSPARSE_FORTUNES_ROOT`` points elsewhere), entries separated by lines
holding only ``%``:

- the folder itself: English (package ``fortunes``), except ``tang300`` and ``song100`` (the 300 Tang poems
  and 100 Song lyrics, classical Chinese, package ``fortunes-zh``);
- one subfolder per language: ``de/`` (``fortunes-de``), ``ru/`` (``fortunes-ru``), ``fr/``, ``es/``...

Collections about computing, Debian or IRC logs (``computers``, ``linux``, ``debian``, ``knghtbrd``...),
ASCII art, bilingual ones, and ``fortunes-zh``'s ``chinese`` (a Chinese translation of the Debian
Reference, technical documentation) are left out (:data:`EXCLUDED`): this source is there to be unlike the
documentation. One :class:`Document` per entry, ``doc_id`` ``fortunes/<lang>/<collection>#<n>`` (n counts
the collection's entries from 0), so the calibration / evaluation split is by entry. Terminal colour codes
are stripped, lines keep their breaks (verse), entries repeated within a language are kept once, and in a
language written in another script an entry without a letter of it is dropped.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from polysparse.sparsify.corpora.documents import Document
from polysparse.sparsify.corpora.languages import Language, locale_language, select_locales
from polysparse.sparsify.corpora.prose import ParagraphFilter

NAME = "fortunes"
DEFAULT_ROOT = "/usr/share/games/fortunes"
ROOT_VARIABLE = "POLYSPARSE_FORTUNES_ROOT"
PACKAGES = {"en": "fortunes", "zh": "fortunes-zh"}
PACKAGES.update({lang: f"fortunes-{lang}" for lang in ("de", "ru", "fr", "es", "it", "pl", "cs", "bg", "ga")})
PACKAGES["pt"] = "fortunes-br"
"""Debian package with the collections of each language (``apt-get install fortunes-de``)."""

CHINESE_COLLECTIONS = ("tang300", "song100")
"""Collections in the top folder that are Chinese, not English (``fortunes-zh``)."""

EXCLUDED = {
    "en": frozenset(
        ("art", "ascii-art", "computers", "debian", "knghtbrd", "linux", "linuxcookie", "perl", "chinese")
    ),
    "de": frozenset(
        ("asciiart", "channel-debian.fortunes", "computer", "debian", "infodrom", "linuxtag", "ms")
        + ("translations",)
    ),
    "ru": frozenset(("computer", "programming", "M$")),
}
"""Collections left out per language folder: computing, Debian, IRC logs, ASCII art, bilingual phrase lists,
and (top folder) ``chinese``, the Debian Reference in Chinese."""

_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_SEPARATOR = re.compile(r"^%[ \t]*$", re.MULTILINE)


def fortunes_root(root: str | None = None) -> Path:
    return Path(root or os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)


def _is_collection(entry: os.DirEntry) -> bool:
    """A collection's text file: not the ``strfile`` index (``.dat``), not a link (``.u8`` aliases)."""
    return entry.is_file(follow_symlinks=False) and not entry.name.endswith(".dat")


def _collections(folder: Path, excluded: frozenset[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(Path(e.path) for e in os.scandir(folder) if _is_collection(e) and e.name not in excluded)


def collection_files(locale: str, root: str | None = None) -> list[Path]:
    """The collections of one language folder (``en``: the top folder, ``zh``: its Chinese poems)."""
    base = fortunes_root(root)
    if locale == "en":
        return _collections(base, EXCLUDED["en"] | frozenset(CHINESE_COLLECTIONS))
    if locale == "zh":
        return [base / name for name in CHINESE_COLLECTIONS if (base / name).is_file()]
    return _collections(base / locale, EXCLUDED.get(locale, frozenset()))


def installed_locales(root: str | None = None) -> list[str]:
    """Language folders that hold collections (``en`` and ``zh`` for the top folder's own)."""
    base = fortunes_root(root)
    if not base.is_dir():
        return []
    locales = [
        e.name for e in os.scandir(base) if e.is_dir() and locale_language(e.name) and any(os.scandir(e.path))
    ]
    locales += [locale for locale in ("en", "zh") if collection_files(locale, root)]
    return sorted(set(locales))


def _read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_entries(text: str) -> list[str]:
    """The entries of a collection's text: split at ``%`` lines, colour codes and trailing blanks removed."""
    entries = []
    for chunk in _SEPARATOR.split(_COLOUR.sub("", text)):
        lines = [line.rstrip() for line in chunk.splitlines()]
        entry = "\n".join(lines).strip("\n")
        if entry.strip():
            entries.append(entry)
    return entries


def load_fortune_documents(language: str | Language, root: str | None = None) -> list[Document]:
    """One document per fortune entry in ``language`` (``de``, ``German``, ``ru_RU``); see the module doc."""
    lang, locales = select_locales(language, installed_locales(root), NAME)
    keep = ParagraphFilter(lang)
    documents = []
    for locale in locales:
        for path in collection_files(locale, root):
            for index, entry in enumerate(split_entries(_read(path))):
                if keep.keep(entry):
                    doc_id = f"{NAME}/{lang}/{path.name}#{index}"
                    documents.append(Document(text=entry, lang=lang, source=NAME, doc_id=doc_id))
    return documents


@lru_cache(maxsize=4)
def _quick_statistics(base: str) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    for locale in installed_locales(base):
        parsed = locale_language(locale)
        if parsed is None:
            continue
        entries, size = stats.get(parsed[0], (0, 0))
        for path in collection_files(locale, base):
            data = path.read_bytes()
            entries += data.count(b"\n%\n") + 1
            size += len(data)
        stats[parsed[0]] = (entries, size)
    return stats


def quick_statistics(root: str | None = None) -> dict[str, tuple[int, int]]:
    """(entries, bytes) per language, counted from the separators without parsing: an upper bound."""
    return _quick_statistics(str(fortunes_root(root)))
