"""Language codes: accept ``de``, ``de-DE``, ``de_DE.UTF-8``, ``deu``/``ger``, ``German``; return ISO 639-1."""

from __future__ import annotations

# ISO 639-1 -> (English name, ISO 639-2/T, ISO 639-2/B or "")
_LANGUAGES: dict[str, tuple[str, str, str]] = {
    "ar": ("Arabic", "ara", ""),
    "de": ("German", "deu", "ger"),
    "en": ("English", "eng", ""),
    "es": ("Spanish", "spa", ""),
    "fr": ("French", "fra", "fre"),
    "ja": ("Japanese", "jpn", ""),
    "ru": ("Russian", "rus", ""),
    "zh": ("Chinese", "zho", "chi"),
}

UNDETERMINED = "und"
"""ISO 639-2 code for text whose language was not given."""


class UnknownLanguageError(ValueError):
    """A language code or name that polysparse does not know."""


def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for code, (name, t_code, b_code) in _LANGUAGES.items():
        for key in (code, name, t_code, b_code):
            if key:
                index[key.lower()] = code
    return index


def normalize_language(code: str) -> str:
    """Map a language code or English name to its ISO 639-1 code; raise listing the known ones."""
    key = code.strip().lower()
    if key in ("und", "undetermined"):
        return UNDETERMINED
    index = _index()
    if key in index:
        return index[key]
    base = key.split(".")[0].replace("_", "-").split("-")[0]
    if base in index:
        return index[base]
    known = ", ".join(f"{c} ({n})" for c, (n, _, _) in sorted(_LANGUAGES.items()))
    raise UnknownLanguageError(f"unknown language {code!r}; known languages: {known}")


def language_name(code: str) -> str:
    """English name of a language (``de`` -> ``German``)."""
    iso = normalize_language(code)
    return "Undetermined" if iso == UNDETERMINED else _LANGUAGES[iso][0]
