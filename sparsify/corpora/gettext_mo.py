"""``gettext:LANG``: the English -> LANG messages of the installed gettext catalogues (``.mo`` files).

Every program that ships translations installs ``/usr/share/locale/<locale>/LC_MESSAGES/<domain>.mo``; the
message ids are the English originals, so each catalogue is parallel text. Locales map to languages as in
:func:`~polysparse.sparsify.corpora.languages.select_locales`: regional folders join their language
(``pt_BR`` and ``pt`` are ``pt``; ``zh_CN``, ``zh_TW``, ``zh_HK`` are ``zh``; ``en_GB`` is ``en``),
folders with an ``@modifier`` (``sr@latin``, ``ca@valencia``, ``en@quot``) are read only when asked for by
name, and languages without an ISO 639-1 code (``ast``, ``fil``, ``ckb``...) are not offered.

Which messages count (:func:`catalogue_pairs`): not the header entry; not untranslated ones (empty
translation) nor those whose translation equals the original; not those that are only format directives,
markup and punctuation (``%s: %s``, ``{0}``); not, in a language written in a non-Latin script, those
with no letter of that script. Menu accelerators are removed (``_Open`` -> ``Open``, ``&File`` ->
``File``, ``ファイル(_F)`` -> ``ファイル``) and simple markup tags (``<b>``, ``<i>``...) stripped. For a
plural entry the singular original pairs with the first plural form. Pairs (and, as documents, target
messages) are deduplicated within the language, first catalogue (by locale, then domain) first.

Catalogues are read with ``polib`` (:func:`parse_mo`); on every installed catalogue it gives the same entries
as the parser it replaced (``bench/results/corpora/window-hashes.md``).

Documents: one per catalogue (``doc_id`` ``gettext/<locale>/<domain>``), its kept target messages one per
line. Symbolic links (aliases of another catalogue) are skipped.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from polysparse.sparsify.corpora.documents import Document, ParallelPair, SourceSpecError
from polysparse.sparsify.corpora.languages import (
    UNDETERMINED,
    Language,
    latin_script_locale,
    locale_language,
    locales_by_language,
    select_locales,
)
from polysparse.sparsify.corpora.prose import has_letters, lacks_native_script

if TYPE_CHECKING:
    import polib

NAME = "gettext"
DEFAULT_ROOT = "/usr/share/locale"
ROOT_VARIABLE = "POLYSPARSE_LOCALE_ROOT"
MO_MAGIC = 0x950412DE  # the first four bytes of a .mo file, in the byte order it was written in


class MoFormatError(ValueError):
    """A file that is not a GNU ``.mo`` catalogue (or is truncated)."""


@dataclass(frozen=True)
class MoEntry:
    """One message of a catalogue: ``msgstr`` holds one string, or one per plural form."""

    msgid: str
    msgstr: tuple[str, ...]
    context: str | None = None
    msgid_plural: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """A parsed ``.mo`` file: its header fields and its entries (the header entry excluded)."""

    header: dict[str, str]
    entries: tuple[MoEntry, ...]


def _translations(entry: polib.MOEntry) -> tuple[str, ...]:
    if entry.msgid_plural:
        return tuple(entry.msgstr_plural[form] for form in sorted(entry.msgstr_plural))
    return (entry.msgstr,)


def parse_mo(data: bytes) -> Catalogue:
    """Parse a GNU ``.mo`` file (either byte order, format revision 0 or 1) with ``polib``.

    Context (``msgctxt``) and plural forms are split out of the keys and values; the header entry (empty
    id, no context) becomes :attr:`Catalogue.header`. Strings are decoded strictly in the header's charset
    (UTF-8 when it names none or an unknown one). A file polib cannot read raises :class:`MoFormatError`;
    polib does not check that strings end inside the file, so a file cut inside its strings is read as far
    as it goes.
    """
    import polib  # here, not at import: the GPU image has no polib, and only the gettext: source needs it

    try:
        catalogue = polib.mofile(data)
    except (OSError, ValueError, struct.error) as error:  # bad magic or revision, truncated tables, bad bytes
        raise MoFormatError(f"not a readable .mo catalogue: {error}") from error
    entries = tuple(
        MoEntry(entry.msgid, _translations(entry), entry.msgctxt, entry.msgid_plural or None)
        for entry in catalogue
    )
    header = {name.strip(): value for name, value in catalogue.metadata.items()}
    return Catalogue(header=header, entries=entries)


# --- message cleaning -------------------------------------------------------------------------------------

_UNDERSCORE_KEY = re.compile(r"_(?=[^\W_])")
_AMPERSAND_KEY = re.compile(r"&(?=[^\W_])(?![a-zA-Z]+;|#\d+;)")
_PARENTHESISED_KEY = re.compile(r"\s?[(（]\s*[_&][^\W_]\s*[)）]")
_MARKUP = re.compile(r"</?(?:b|i|u|s|tt|big|small|span|a|br|p|sup|sub|em|strong|code|kbd|q)\b[^<>]*>", re.I)
_DIRECTIVE = re.compile(
    r"""%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I64|I32|I)?
          [diouxXeEfFgGaAcsSpnm%]
      | %\([^)]*\)[-+ #0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]
      | %\d+ | %<\w+> | \{[^{}]*\} | <[^<>]*> | \$\{?\w+\}? | https?://\S+""",
    re.X,
)


def accelerator(msgid: str) -> str | None:
    """The accelerator marker (``_`` or ``&``) an original uses, if it has exactly one of one kind."""
    if msgid.count("_") == 1 and _UNDERSCORE_KEY.search(msgid):
        return "_"
    if msgid.count("&") == 1 and _AMPERSAND_KEY.search(msgid):
        return "&"
    return None


def clean_message(text: str, marker: str | None) -> str:
    """Drop the accelerator ``marker`` (as found in the original) and simple markup from a message."""
    if marker:
        stripped = _PARENTHESISED_KEY.sub("", text)
        if stripped == text:
            pattern = _UNDERSCORE_KEY if marker == "_" else _AMPERSAND_KEY
            if len(pattern.findall(text)) == 1:
                stripped = pattern.sub("", text, count=1)
        text = stripped
    return _MARKUP.sub("", text).strip()


def only_directives(text: str) -> bool:
    """True for a message that is only format directives, placeholders, markup and punctuation."""
    return not has_letters(_DIRECTIVE.sub("", text))


def catalogue_pairs(catalogue: Catalogue, lang: str) -> Iterator[tuple[int, MoEntry, str, str]]:
    """(index, entry, cleaned original, cleaned translation) for each message that counts (module rules).

    ``lang`` decides the script rule (``und``: none).
    """
    for index, entry in enumerate(catalogue.entries):
        translation = entry.msgstr[0] if entry.msgstr else ""
        if not translation.strip() or not entry.msgid.strip():
            continue
        marker = accelerator(entry.msgid)
        src = clean_message(entry.msgid, marker)
        tgt = clean_message(translation, marker)
        if not src or not tgt or src == tgt or src.split() == tgt.split():
            continue
        if only_directives(src) or lacks_native_script(tgt, lang) or only_directives(tgt):
            continue
        yield index, entry, src, tgt


# --- installed catalogues ---------------------------------------------------------------------------------


def locale_root(root: str | None = None) -> Path:
    return Path(root or os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)


def _catalogue_files(base: Path, locale: str) -> list[Path]:
    folder = base / locale / "LC_MESSAGES"
    if not folder.is_dir():
        return []
    return sorted(
        Path(entry.path)
        for entry in os.scandir(folder)
        if entry.name.endswith(".mo") and entry.is_file() and not entry.is_symlink()
    )


def installed_locales(root: str | None = None) -> list[str]:
    """Locale folders with at least one catalogue, for languages with an ISO 639-1 code."""
    base = locale_root(root)
    if not base.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(base)
        if entry.is_dir() and locale_language(entry.name) and _catalogue_files(base, entry.name)
    )


@lru_cache(maxsize=4096)
def _read_catalogue(path: str, mtime_ns: int) -> Catalogue | None:
    try:
        return parse_mo(Path(path).read_bytes())
    except MoFormatError:
        return None


def read_catalogue(path: Path) -> Catalogue | None:
    """A parsed catalogue (cached per process), or ``None`` for a file that is not a valid ``.mo``."""
    return _read_catalogue(str(path), path.stat().st_mtime_ns)


@dataclass(frozen=True)
class _Message:
    locale: str
    domain: str
    index: int
    context: str | None
    msgid: str
    src: str
    tgt: str


def _messages(language: str | Language, root: str | None) -> tuple[str, tuple[_Message, ...]]:
    return _cached_messages(language, str(locale_root(root)))


@lru_cache(maxsize=8)
def _cached_messages(language: str | Language, root: str) -> tuple[str, tuple[_Message, ...]]:
    base = Path(root)
    lang, locales = select_locales(language, installed_locales(root), NAME)
    messages = []
    for locale in locales:
        for path in _catalogue_files(base, locale):
            catalogue = read_catalogue(path)
            if catalogue is None:
                continue
            domain = path.name[: -len(".mo")]
            script = UNDETERMINED if latin_script_locale(locale) else lang  # no script rule for sr@latin
            for index, entry, src, tgt in catalogue_pairs(catalogue, script):
                messages.append(_Message(locale, domain, index, entry.context, entry.msgid, src, tgt))
    return lang, tuple(messages)


def load_parallel_pairs(language: str | Language, root: str | None = None) -> list[ParallelPair]:
    """English -> ``language`` message pairs, grouped per catalogue (locale, then domain), deduplicated.

    ``pair_id`` is ``gettext/<locale>/<domain>#<index of the message in the catalogue>``.
    """
    lang, messages = _messages(language, root)
    pairs, seen = [], set()
    for m in messages:
        if (m.src, m.tgt) in seen:
            continue
        seen.add((m.src, m.tgt))
        pairs.append(ParallelPair(m.src, m.tgt, "en", lang, f"{NAME}/{m.locale}/{m.domain}#{m.index}"))
    return pairs


def load_gettext_parallel(
    src_language: str | Language, tgt_language: str | Language, root: str | None = None
) -> list[ParallelPair]:
    """Message pairs between two languages: English with another directly, two others through the shared
    English original (same domain, context and message id; first locale of each language that has it)."""
    src_language, tgt_language = Language.of(src_language), Language.of(tgt_language)
    src_lang, tgt_lang = src_language.code, tgt_language.code
    if src_lang == tgt_lang:
        raise SourceSpecError(f"{NAME}: source and target language are both {src_lang}")
    if src_lang == "en":
        return load_parallel_pairs(tgt_language, root)
    if tgt_lang == "en":
        return [
            ParallelPair(p.tgt, p.src, p.tgt_lang, "en", p.pair_id)
            for p in load_parallel_pairs(src_language, root)
        ]
    _, src_messages = _messages(src_language, root)
    _, tgt_messages = _messages(tgt_language, root)
    by_key: dict[tuple[str, str | None, str], _Message] = {}
    for m in tgt_messages:
        by_key.setdefault((m.domain, m.context, m.msgid), m)
    pairs, seen = [], set()
    for m in src_messages:
        other = by_key.get((m.domain, m.context, m.msgid))
        if other is None or m.tgt == other.tgt or (m.tgt, other.tgt) in seen:
            continue
        seen.add((m.tgt, other.tgt))
        pair_id = f"{NAME}/{m.locale}+{other.locale}/{m.domain}#{m.index}"
        pairs.append(ParallelPair(m.tgt, other.tgt, src_lang, tgt_lang, pair_id))
    return pairs


def load_gettext_documents(language: str | Language, root: str | None = None) -> list[Document]:
    """One document per catalogue in ``language``: its kept translations, one message per line."""
    lang, messages = _messages(language, root)
    grouped: dict[tuple[str, str], list[str]] = {}
    seen: set[str] = set()
    for m in messages:
        if m.tgt in seen:
            continue
        seen.add(m.tgt)
        grouped.setdefault((m.locale, m.domain), []).append(m.tgt)
    return [
        Document(text="\n".join(texts), lang=lang, source=NAME, doc_id=f"{NAME}/{locale}/{domain}")
        for (locale, domain), texts in grouped.items()
    ]


def _lengths(handle, offset: int, count: int, order: str) -> array:
    handle.seek(offset)
    table = handle.read(8 * count)
    lengths = array("I")
    lengths.frombytes(table[: len(table) // 8 * 8])
    if (order == "<") != (sys.byteorder == "little"):
        lengths.byteswap()
    return lengths[0::2]


def _translated_bytes(path: Path) -> int:
    """Bytes of a catalogue's translations but the header's, from its tables alone (no string decoded).

    Read from the length tables by hand rather than through polib, which would decode every string of every
    installed catalogue just to size them for the listing of ``polysparse corpora``.
    """
    with path.open("rb") as handle:
        head = handle.read(28)
        if len(head) < 28:
            return 0
        order = "<" if struct.unpack("<I", head[:4])[0] == MO_MAGIC else ">"
        if struct.unpack(order + "I", head[:4])[0] != MO_MAGIC:
            return 0
        _, count, originals, translations = struct.unpack(order + "4I", head[4:20])
        first_original = _lengths(handle, originals, min(count, 1), order)
        translation_lengths = _lengths(handle, translations, count, order)
    # The header has the empty original, which sorts first.
    header = translation_lengths[0] if len(first_original) and first_original[0] == 0 else 0
    return sum(translation_lengths) - header


@lru_cache(maxsize=4)
def _quick_statistics(base: str) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    for lang, locales in locales_by_language(installed_locales(base)).items():
        for locale in locales:
            sizes = [size for size in map(_translated_bytes, _catalogue_files(Path(base), locale)) if size]
            docs, size = stats.get(lang, (0, 0))
            stats[lang] = (docs + len(sizes), size + sum(sizes))
    return {lang: value for lang, value in stats.items() if value[0]}


def quick_statistics(root: str | None = None) -> dict[str, tuple[int, int]]:
    """(catalogues with translations, bytes of their translations) per language: an upper bound, from the
    tables only; catalogues holding only a header are not counted."""
    return _quick_statistics(str(locale_root(root)))
