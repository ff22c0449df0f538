"""Language codes: accept ``de``, ``de-DE``, ``de_DE.UTF-8``, ``deu``/``ger``, ``German``; return ISO 639-1.

Every ISO 639-1 language is known, with its English names and ISO 639-2/T and ISO 639-2/B codes, from the
ISO 639 table of Debian's ``iso-codes`` package (``/usr/share/iso-codes/json/iso_639-2.json``). Matching
is case-insensitive.

Regional and script variants map to the base language: ``zh-CN``, ``zh_TW``, ``zh-Hant`` -> ``zh``; ``pt-BR``
-> ``pt``; ``de_CH`` -> ``de``; ``sr@latin`` -> ``sr``. Documents are tagged with the base language only; the
variant survives in their ``doc_id`` (the installed locale folder) and a source may use it to narrow its
choice of folders (see :func:`select_locales`). Deprecated ISO 639-1 codes ``iw``, ``in``, ``ji`` are
accepted for ``he``, ``id``, ``yi``. Languages without an ISO 639-1 code (Asturian ``ast``, Low German
``nds``, ...) are not known: their documents could not carry a two-letter tag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from polysparse.sparsify.corpora.documents import MissingDependencyError

ISO_CODES_ROOT = "/usr/share/iso-codes/json"
"""Where Debian's ``iso-codes`` package installs the ISO 639 table (``iso_639-2.json``)."""
ISO_CODES_VARIABLE = "POLYSPARSE_ISO_CODES_ROOT"
"""Points the table at another copy of iso-codes' ``json`` folder (another system's installation)."""

DISPLAY_NAMES = {
    "cu": "Church Slavonic",
    "dv": "Dhivehi",
    "el": "Greek",
    "gd": "Scottish Gaelic",
    "ht": "Haitian Creole",
    "ia": "Interlingua",
    "kj": "Kwanyama",
    "kl": "Greenlandic",
    "ky": "Kyrgyz",
    "li": "Limburgish",
    "nb": "Norwegian Bokmål",
    "nd": "North Ndebele",
    "nr": "South Ndebele",
    "oc": "Occitan",
    "pa": "Punjabi",
    "ps": "Pashto",
    "st": "Southern Sotho",
    "to": "Tonga",
    "ug": "Uyghur",
}
"""English names where iso-codes' first name is not the short common one: it lists several in another order
(``Kirghiz; Kyrgyz``), inverts one (``Greek, Modern (1453-)``) or qualifies it (``Tonga (Tonga Islands)``).
The names enter translation prompts (``German: ...``), so they stay as the committed results used them."""

EXTRA_NAMES = {
    "el": ("Modern Greek",),
    "fa": ("Farsi",),
    "he": ("iw",),
    "id": ("in",),
    "nb": ("Bokmål", "Norwegian Bokmal"),
    "nn": ("Nynorsk",),
    "st": ("Sesotho",),
    "yi": ("ji",),
}
"""Names and codes accepted besides iso-codes' own: common English names it lacks and the deprecated ISO
639-1 codes."""


@lru_cache(maxsize=1)
def _languages() -> dict[str, tuple[str, str, str, tuple[str, ...]]]:
    """ISO 639-1 -> (English name, ISO 639-2/T, ISO 639-2/B or "", other accepted names), from iso-codes."""
    path = Path(os.environ.get(ISO_CODES_VARIABLE) or ISO_CODES_ROOT) / "iso_639-2.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["639-2"]
    except (OSError, ValueError, KeyError) as error:
        raise MissingDependencyError(
            f"cannot read the ISO 639 language table {path} ({error}): install the Debian package iso-codes "
            f"(sudo apt-get install iso-codes), or set {ISO_CODES_VARIABLE} to the json folder of iso-codes"
        ) from error
    table = {}
    for entry in sorted((e for e in entries if "alpha_2" in e), key=lambda e: e["alpha_2"]):
        code = entry["alpha_2"]
        names = [name.strip() for name in entry["name"].split(";")]
        if "common_name" in entry:
            names.append(entry["common_name"])
        name = DISPLAY_NAMES.get(code, names[0])
        aliases = tuple(n for n in (*names, *EXTRA_NAMES.get(code, ())) if n != name)
        table[code] = (name, entry["alpha_3"], entry.get("bibliographic", ""), aliases)
    return table


UNDETERMINED = "und"
"""ISO 639-2 code for text whose language was not given."""

NON_LATIN_SCRIPT = frozenset({
    "am", "ar", "as", "ba", "be", "bg", "bn", "bo", "ce", "cv", "dv", "dz", "el", "fa", "gu", "he", "hi",
    "hy", "iu", "ja", "ka", "kk", "km", "kn", "ko", "ks", "ky", "lo", "mk", "ml", "mn", "mr", "my", "ne",
    "or", "os", "pa", "ps", "ru", "sa", "sd", "si", "sr", "ta", "te", "tg", "th", "ti", "tt", "ug", "uk",
    "ur", "yi", "zh",
})  # fmt: skip
"""Languages normally written in a script other than Latin: a paragraph of theirs with no letter outside
ASCII is not in that language (it is an untranslated English original). Serbian counts as Cyrillic: its
Latin-script locales (``sr@latin``) are only read when asked for by name."""


def latin_script_locale(locale: str) -> bool:
    """True for a locale folder that asks for Latin script (``sr@latin``, ``uz@Latn``, ``be@latin``): the
    script rule of :data:`NON_LATIN_SCRIPT` does not apply to it."""
    lowered = locale.lower()
    return "@latin" in lowered or "@latn" in lowered or "-latn" in lowered or "_latn" in lowered


class UnknownLanguageError(ValueError):
    """A language code or name that polysparse does not know (or that a source has not installed).

    ``available`` lists what the source in question has installed, when a source is concerned.
    """

    def __init__(self, message: str, available: tuple[str, ...] = ()):
        super().__init__(message)
        self.available = available


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for code, (name, t_code, b_code, aliases) in _languages().items():
        for key in (code, name, t_code, b_code, *aliases):
            if key:
                index.setdefault(key.lower(), code)
    return index


def known_languages() -> list[str]:
    """Every ISO 639-1 code polysparse knows, sorted."""
    return sorted(_languages())


def describe_languages(codes: Iterable[str]) -> str:
    """``de (German), fr (French)`` for a set of ISO 639-1 codes."""
    return ", ".join(f"{c} ({language_name(c)})" for c in sorted(set(codes))) or "none"


def split_locale(code: str) -> tuple[str, str]:
    """Split a language tag or locale name into its ISO 639-1 code and its variant.

    The variant is the lower-cased rest of the tag with ``_`` read as ``-`` and the encoding dropped:
    ``de_DE.UTF-8`` -> ``("de", "de")``, ``zh-TW`` -> ``("zh", "tw")``, ``sr@latin`` -> ``("sr", "@latin")``,
    ``German`` -> ``("de", "")``. Raises :class:`UnknownLanguageError` listing the known languages.
    """
    key = code.strip().lower()
    if key in ("und", "undetermined"):
        return UNDETERMINED, ""
    index = _index()
    if key in index:
        return index[key], ""
    base, at, modifier = key.partition("@")
    base = base.split(".")[0].replace("_", "-")
    language, _, region = base.partition("-")
    if language in index:
        variant = region + (f"@{modifier.split('.')[0]}" if at else "")
        return index[language], variant
    raise UnknownLanguageError(
        f"unknown language {code!r}: give an ISO 639-1 code (de, fr, zh, ...), a locale (de_DE) or an "
        "English name (German); `polysparse corpora` lists the languages installed here"
    )


def normalize_language(code: str) -> str:
    """Map a language code, locale name or English name to ISO 639-1; raise listing the known ones."""
    return split_locale(code)[0]


def language_name(code: str) -> str:
    """English name of a language (``de`` -> ``German``)."""
    iso = normalize_language(code)
    return "Undetermined" if iso == UNDETERMINED else _languages()[iso][0]


def iso639_2(code: str, bibliographic: bool = False) -> str:
    """ISO 639-2 code of a language (``de`` -> ``deu``; ``ger`` with ``bibliographic=True``)."""
    iso = normalize_language(code)
    if iso == UNDETERMINED:
        return UNDETERMINED
    _, t_code, b_code, _ = _languages()[iso]
    return (b_code or t_code) if bibliographic else t_code


def locale_language(locale: str) -> tuple[str, str] | None:
    """ISO 639-1 code and variant of an installed locale folder name (``pt_BR`` -> ``("pt", "br")``).

    ``None`` for folders that are not a known language (``ast``, ``C``, ``man1``).
    """
    try:
        iso, variant = split_locale(locale)
    except UnknownLanguageError:
        return None
    if iso == UNDETERMINED or len(locale.replace("_", "-").split("-")[0].split("@")[0]) != 2:
        return None
    return iso, variant


@dataclass(frozen=True)
class Language:
    """A requested language, normalised once where the request is parsed.

    ``written`` is the request as given (``zh_TW.UTF-8``, ``German``); ``iso`` its ISO 639-1 code (``None``
    for a language polysparse does not know: the source it is asked of refuses it, listing what it has);
    ``variant`` the narrowing part (``tw``, ``@latin``; see :func:`split_locale`).
    """

    written: str
    iso: str | None
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Language:
        try:
            iso, variant = split_locale(text)
        except UnknownLanguageError:
            return cls(text, None)
        return cls(text, iso, variant)

    @classmethod
    def of(cls, value: str | Language) -> Language:
        """``value`` itself when already parsed; a code, locale or name is parsed."""
        return value if isinstance(value, Language) else cls.parse(value)

    @classmethod
    def iso_code(cls, code: str) -> Language:
        """The language of an ISO 639-1 code that is already normalised (no variant)."""
        return cls(code, code)

    @property
    def code(self) -> str:
        """The ISO 639-1 code; raises :class:`UnknownLanguageError` for an unknown language."""
        if self.iso is None:
            split_locale(self.written)  # raises the error listing how languages are given
        return self.iso  # type: ignore[return-value]

    def known(self) -> Language:
        """This language; raises :class:`UnknownLanguageError` for an unknown one."""
        self.code  # noqa: B018 -- the property raises for an unknown language
        return self

    def __str__(self) -> str:
        return self.written


def locales_by_language(locales: Iterable[str]) -> dict[str, list[str]]:
    """A source's locale folders grouped by ISO 639-1 code, in the order given: the languages a source has.

    Folders that are no known language (``ast``, ``C``) are left out, and so are those with an
    ``@modifier`` (``sr@latin``): they are read only when asked for by name (:func:`select_locales`).
    """
    grouped: dict[str, list[str]] = {}
    for locale in locales:
        parsed = locale_language(locale)
        if parsed is not None and "@" not in parsed[1]:
            grouped.setdefault(parsed[0], []).append(locale)
    return grouped


def select_locales(requested: str | Language, installed: Iterable[str], source: str) -> tuple[str, list[str]]:
    """The installed locale folders that serve a requested language, and its ISO 639-1 code.

    ``installed`` are a source's locale folder names (``de-DE``, ``zh_TW``, ``sr@latin``, ``pt``). A
    request with a variant that is installed (``zh-TW``, ``sr@latin``) selects just that folder; otherwise
    every folder of the language without an ``@modifier`` is selected (``de_DE.UTF-8`` selects the guide's
    ``de``; ``zh`` selects both ``zh-CN`` and ``zh-TW``). Raises :class:`UnknownLanguageError` naming the
    languages the source has when the language is unknown or not installed.
    """
    by_language: dict[str, list[tuple[str, str]]] = {}
    for folder in sorted(installed):
        parsed = locale_language(folder)
        if parsed is not None:
            by_language.setdefault(parsed[0], []).append((folder, parsed[1]))
    available = tuple(sorted(by_language))
    language = Language.of(requested)
    iso, variant = language.iso, language.variant
    if iso is None:
        raise UnknownLanguageError(
            f"{source}: unknown language {language.written!r}; installed here: "
            f"{describe_languages(available)} "
            "(ISO 639-1 codes, locales such as de_DE and English names are accepted; `polysparse corpora` "
            "lists every source, its languages and the Debian package that adds more)",
            available,
        )
    folders = by_language.get(iso, [])
    chosen = [f for f, v in folders if variant and v == variant]
    if not chosen and "@" in variant:
        chosen = [f for f, v in folders if v.endswith(variant)]
    if not chosen:
        chosen = [f for f, v in folders if "@" not in v]
    if not chosen:
        raise UnknownLanguageError(
            f"{source}: no text in {language_name(iso)} ({iso}) is installed; installed here: "
            f"{describe_languages(available)}",
            available,
        )
    return iso, chosen
