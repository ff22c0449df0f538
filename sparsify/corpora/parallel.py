"""Parallel text and few-shot translation prompts (Kim et al. 2024: calibrate on translation demonstrations).

A parallel spec is ``SOURCE:LANG`` (LANG -> English, the direction of the paper) or ``SOURCE:SRC->TGT`` (any
direction, e.g. ``gettext:en->de``); the sources are ``gettext`` (message pairs; two non-English languages
meet through the shared English original), ``handbook`` and ``install-guide`` (paragraphs aligned by page
and paragraph order, only on pages whose paragraph counts match).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from polysparse.sparsify.corpora.documents import EmptyCorpusError, ParallelPair, SourceSpecError
from polysparse.sparsify.corpora.gettext_mo import load_gettext_parallel
from polysparse.sparsify.corpora.handbook import load_handbook_parallel
from polysparse.sparsify.corpora.install_guide import load_install_guide_parallel
from polysparse.sparsify.corpora.languages import Language, language_name
from polysparse.sparsify.corpora.prose import normalize_space
from polysparse.sparsify.corpora.specs import ParallelSpec

PARALLEL_SOURCES: dict[str, Callable[[Language, Language], list[ParallelPair]]] = {
    "gettext": load_gettext_parallel,
    "handbook": load_handbook_parallel,
    "install-guide": load_install_guide_parallel,
}
"""Sources of aligned text by spec name; each takes (source language, target language)."""

MAX_PROMPT_SENTENCE_CHARS = 400
"""Pairs with a side longer than this (in characters, after whitespace normalisation) are left out of
prompts: four shots then stay under roughly 1,000 tokens for any language."""

MIN_PROMPT_SENTENCE_CHARS = 20
"""Pairs whose longer side is shorter than this are left out of prompts: single words and menu labels
(most of a gettext catalogue) demonstrate little translation."""


def check_parallel_source(source: str) -> None:
    """Raise :class:`SourceSpecError` listing the parallel sources unless ``source`` is one."""
    if source not in PARALLEL_SOURCES:
        known = ", ".join(sorted(PARALLEL_SOURCES))
        raise SourceSpecError(f"no parallel text in source {source!r}; parallel sources: {known}")


def parse_parallel_spec(spec: str) -> tuple[str, str, str]:
    """``gettext:de`` -> ``("gettext", "de", "en")``; ``handbook:en->ja`` -> ``("handbook", "en", "ja")``."""
    parsed = ParallelSpec.parse(spec)
    return parsed.source, parsed.src.code, parsed.tgt.code


def parallel_pairs(
    source: str, src_language: str | Language, tgt_language: str | Language
) -> list[ParallelPair]:
    """Pairs of one parallel source with ``src`` in ``src_language`` and ``tgt`` in ``tgt_language``.

    The languages may carry a variant that narrows the installed locales (``zh-TW``, ``pt-BR``).
    """
    check_parallel_source(source)
    pairs = PARALLEL_SOURCES[source](src_language, tgt_language)
    if not pairs:
        raise EmptyCorpusError(f"{source}: no aligned {src_language} -> {tgt_language} text")
    return pairs


def load_parallel(spec: ParallelSpec) -> list[ParallelPair]:
    """Aligned pairs for a parsed parallel spec (:meth:`ParallelSpec.parse` of ``gettext:de``,
    ``handbook:de->en``, ``install-guide:en->ja``)."""
    return parallel_pairs(spec.source, spec.src, spec.tgt)


def pair_document_ids(pair_id: str) -> list[str]:
    """The documents a pair comes from, as ``doc_id`` values of the document sources:
    ``handbook/de-DE+en-US/page#3`` -> ``handbook/de-DE/page``, ``handbook/en-US/page``;
    ``gettext/de/coreutils#12`` -> ``gettext/de/coreutils`` (English message ids are no document)."""
    head = pair_id.split("#", 1)[0]
    name, _, rest = head.partition("/")
    locales, _, unit = rest.partition("/")
    return [f"{name}/{locale}/{unit}" for locale in locales.split("+")]


def _oriented(pairs: Sequence[ParallelPair], src_lang: str, tgt_lang: str) -> list[tuple[str, str]]:
    oriented = []
    for pair in pairs:
        if (pair.src_lang, pair.tgt_lang) == (src_lang, tgt_lang):
            oriented.append((pair.src, pair.tgt))
        elif (pair.src_lang, pair.tgt_lang) == (tgt_lang, src_lang):
            oriented.append((pair.tgt, pair.src))
    return oriented


def translation_prompts(
    pairs: Sequence[ParallelPair],
    src_lang: str | Language,
    tgt_lang: str | Language,
    shots: int = 4,
    seed: int = 0,
    count: int | None = None,
    max_chars: int = MAX_PROMPT_SENTENCE_CHARS,
    min_chars: int = MIN_PROMPT_SENTENCE_CHARS,
) -> list[str]:
    """Few-shot translation demonstrations: ``"{Src}: {sentence}\\n{Tgt}: {sentence}\\n"`` x ``shots`` each.

    Names are English language names (``German: ...\\nEnglish: ...\\n``). Pairs are oriented to
    ``src_lang -> tgt_lang`` (pairs given the other way round are flipped; pairs of other languages are
    ignored), whitespace (newlines included) is collapsed, and pairs outside the length caps are skipped.
    The order is a shuffle by ``seed``; every pair is used in at most one prompt until all pairs have been
    used, after which a new shuffle starts (only when ``count`` asks for more prompts than one pass gives;
    no prompt holds the same pair twice). ``count=None`` gives one pass: ``len(usable) // shots`` prompts.
    """
    if shots < 1:
        raise SourceSpecError(f"shots must be at least 1, got {shots}")
    src_lang, tgt_lang = Language.of(src_lang).code, Language.of(tgt_lang).code
    src_name, tgt_name = language_name(src_lang), language_name(tgt_lang)
    usable = []
    for src, tgt in _oriented(pairs, src_lang, tgt_lang):
        src, tgt = normalize_space(src), normalize_space(tgt)
        if src and tgt and max(len(src), len(tgt)) <= max_chars and max(len(src), len(tgt)) >= min_chars:
            usable.append((src, tgt))
    if len(usable) < shots:
        raise EmptyCorpusError(
            f"{len(usable)} usable {src_lang} -> {tgt_lang} pairs (of {len(pairs)}; caps {min_chars}.."
            f"{max_chars} characters), fewer than the {shots} shots of one prompt"
        )
    wanted = len(usable) // shots if count is None else count
    rng = random.Random(seed)
    order: list[int] = []
    prompts = []
    while len(prompts) < wanted:
        if len(order) < shots:
            leftover = set(order)
            fresh = [i for i in range(len(usable)) if i not in leftover]
            rng.shuffle(fresh)
            order += fresh
        chosen, order = order[:shots], order[shots:]
        prompts.append("".join(f"{src_name}: {usable[i][0]}\n{tgt_name}: {usable[i][1]}\n" for i in chosen))
    return prompts
