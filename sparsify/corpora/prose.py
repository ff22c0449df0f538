"""Shared rules for what counts as a language's prose: whitespace, untranslated text, duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher

from polysparse.sparsify.corpora.languages import NON_LATIN_SCRIPT

_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def normalize_space(text: str) -> str:
    """Collapse whitespace runs to one space and strip the ends (the form paragraphs are compared in)."""
    return _SPACE.sub(" ", text).strip()


def join_lines(lines: Iterable[str]) -> str:
    """Join filled text lines with spaces, except between two CJK characters (which never had one)."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out and not (_CJK.match(out[-1]) and _CJK.match(line[0])):
            out += " "
        out += line
    return out


def has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def lacks_native_script(text: str, lang: str) -> bool:
    """True when ``lang`` is written in a non-Latin script and ``text`` has no letter outside ASCII.

    Such a paragraph is an untranslated (English) original left in a translated document.
    """
    if lang not in NON_LATIN_SCRIPT:
        return False
    return not any(c.isalpha() and ord(c) > 0x24F for c in text)


NEAR_COPY_RATIO = 0.6
"""A paragraph whose words match its English counterpart's this closely (difflib ratio over word sequences)
is a copy of the English original with a few pieces translated, such as a cross-reference ("see Kapitel 9,
Unix Services"): English text, not the language's."""


def near_copy(text: str, original: str, threshold: float = NEAR_COPY_RATIO) -> bool:
    """True when ``text`` is (nearly) word-for-word ``original``."""
    if text == original:
        return True
    a, b = text.split(), original.split()
    if not a or not b:
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


class ParagraphFilter:
    """Keeps a language's own paragraphs: drops English originals and duplicates, in the order given.

    ``english`` is the set of English paragraphs (whitespace-normalised) of the same work; a paragraph found
    in it is English, not ``lang``, and is dropped unless ``lang`` is English. Duplicates within the
    language are dropped after their first occurrence. Paragraphs without letters are dropped.
    """

    def __init__(self, lang: str, english: frozenset[str] | set[str] = frozenset()):
        self.lang = lang
        self.english = english if lang != "en" else frozenset()
        self.seen: set[str] = set()

    def keep(self, paragraph: str) -> bool:
        if not paragraph or paragraph in self.seen or not has_letters(paragraph):
            return False
        if paragraph in self.english or lacks_native_script(paragraph, self.lang):
            return False
        self.seen.add(paragraph)
        return True

    def filter(self, paragraphs: Iterable[str]) -> list[str]:
        return [p for p in paragraphs if self.keep(p)]
