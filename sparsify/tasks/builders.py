"""Task specs and the items they build, from **evaluation** documents of the hash split only.

- ``translation-choice:SRC->TGT:PARALLEL`` (``gettext``, ``handbook``, ``install-guide``): context
  ``"{Src name}: {sentence}\\n{Tgt name}:"``, choices the true translation and distractors: other
  translations from the same held-out text, within :data:`LENGTH_TOLERANCE` of the answer's length,
  drawn from those sharing the most words with it (hard negatives).
- ``continuation-choice:LANG:SOURCE`` (any document source): context the first two or more sentences of a
  paragraph (every cut point, so a paragraph of n sentences gives n - 2 items), choices its true next
  sentence and sentences of similar length from other paragraphs of the same document.
- ``file:PATH.jsonl``: items as :func:`~polysparse.sparsify.tasks.items.read_items` reads them.

A pair or paragraph becomes an item only if every document it comes from is on the evaluation side of
:func:`~polysparse.sparsify.calibration.split_source` (for a book pair: the page in both languages; for
a gettext pair: the catalogue of each non-English side), so no item's text calibrates. Everything is
deterministic given the seed.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from polysparse.sparsify.corpora import (
    PARALLEL_SOURCES,
    SOURCES,
    EmptyCorpusError,
    Language,
    ParallelSpec,
    SourceSpec,
    UnknownLanguageError,
    language_name,
    load_parallel,
    normalize_language,
    pair_document_ids,
)
from polysparse.sparsify.corpora.prose import normalize_space
from polysparse.sparsify.tasks.items import Item, TaskError, read_items

TASK_KINDS = ("translation-choice", "continuation-choice", "file")

NUM_CHOICES = 4
LENGTH_TOLERANCE = 0.2
"""Distractors differ from the answer's length by at most this share of it (in characters), so length
alone does not give the answer away."""
HARD_NEGATIVE_POOL = 8
"""Distractors are drawn at random from this many candidates sharing the most words with the answer: hard,
but not always the three nearest (which are often other translations of near-identical messages)."""
MIN_CHARS = 20
MIN_CHARS_UNSPACED = 8
"""Shortest sentence kept (characters): 20 in scripts with spaces, 8 in Chinese and Japanese."""
MAX_CHARS = 300

UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my"})
"""Languages written without spaces between words (sentences join with no space)."""


# ----------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task spec; ``lang`` is the language the task measures (the non-English side)."""

    kind: str
    lang: str = ""
    src: str = ""
    tgt: str = ""
    source: str = ""
    path: str = ""

    @property
    def name(self) -> str:
        if self.kind == "translation-choice":
            return f"translation-choice:{self.src}->{self.tgt}:{self.source}"
        if self.kind == "continuation-choice":
            return f"continuation-choice:{self.lang}:{self.source}"
        return f"file:{self.path}"

    @property
    def metric(self) -> str:
        """The accuracy a study reads this task by: ``acc_norm`` for continuation, ``acc`` otherwise.

        Continuation choices differ in length, and the summed log-likelihood favours short ones, which
        ``acc_norm`` (per UTF-8 byte) corrects (the sanity check in docs/tasks.md). Translation choices are
        length-matched and read by ``acc``, as lm-eval reports multiple choice.
        """
        return "acc_norm" if self.kind == "continuation-choice" else "acc"

    @property
    def family(self) -> str:
        """The task without its language (``translation-choice:X->en:gettext``): one study table each."""
        if self.kind == "translation-choice":
            src = "X" if self.src == self.lang else self.src
            tgt = "X" if self.tgt == self.lang else self.tgt
            return f"translation-choice:{src}->{tgt}:{self.source}"
        if self.kind == "continuation-choice":
            return f"continuation-choice:X:{self.source}"
        return self.name


def _language(code: str, spec: str) -> str:
    try:
        return normalize_language(code)
    except UnknownLanguageError as error:
        raise TaskError(f"{spec}: {error}") from None


def parse_task(spec: str) -> TaskSpec:
    """Parse one task spec; raises :class:`TaskError` with the accepted forms."""
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    forms = (
        "translation-choice:SRC->TGT:PARALLEL (PARALLEL: "
        + ", ".join(sorted(PARALLEL_SOURCES))
        + "), continuation-choice:LANG:SOURCE, file:PATH.jsonl"
    )
    if kind not in TASK_KINDS or not sep or not rest:
        raise TaskError(f"unknown task {spec!r}; tasks are {forms}")
    if kind == "file":
        return TaskSpec(kind="file", path=rest)
    if kind == "translation-choice":
        languages, sep, source = rest.partition(":")
        src, arrow, tgt = languages.partition("->")
        if not (sep and arrow and src and tgt and source):
            raise TaskError(f"malformed task {spec!r}; expected {forms}")
        if source not in PARALLEL_SOURCES:
            known = ", ".join(sorted(PARALLEL_SOURCES))
            raise TaskError(f"{spec}: {source!r} has no parallel text; parallel sources: {known}")
        src, tgt = _language(src, spec), _language(tgt, spec)
        if src == tgt:
            raise TaskError(f"{spec}: source and target language are both {src}")
        return TaskSpec(kind=kind, lang=src if tgt == "en" else tgt, src=src, tgt=tgt, source=source)
    lang, sep, source = rest.partition(":")
    if not (sep and lang and source):
        raise TaskError(f"malformed task {spec!r}; expected {forms}")
    name = source.split(":", 1)[0]
    if name not in SOURCES:
        raise TaskError(f"{spec}: unknown source {name!r}; known sources: {', '.join(sorted(SOURCES))}")
    return TaskSpec(kind=kind, lang=_language(lang, spec), source=source)


def parse_tasks(specs: str | Sequence[str]) -> list[TaskSpec]:
    """Comma-separated (or listed) task specs, in order, duplicates removed."""
    pieces = specs.split(",") if isinstance(specs, str) else list(specs)
    parsed: list[TaskSpec] = []
    for piece in pieces:
        if piece.strip():
            task = parse_task(piece)
            if task not in parsed:
                parsed.append(task)
    if not parsed:
        raise TaskError("no tasks given")
    return parsed


# ----------------------------------------------------------------------------------------------------------
# Text helpers (pure)
# ----------------------------------------------------------------------------------------------------------

_BOUNDARY = re.compile(
    r"(?:(?<=[.!?…])|(?<=[.!?…][\"'»”’)\]]))\s+"  # Latin-style end, then whitespace
    r"|(?<=[。！？؟।])[\"'」』”’)]*\s*"  # CJK, Arabic and Devanagari ends need no space
)
_ABBREVIATION = re.compile(
    r"(?:\b[^\W\d_]\.|\b[^\W\d_]{1,3}\.[^\W\d_]{1,3}\.|\b(?:e\.g|i\.e|etc|vs|Nr|bzw|ca|usw|z\.B|d\.h)\.)$"
)
"""Endings that are no sentence end: a single letter (initials), dotted short forms (``z.B.``), and a few
common abbreviations."""
_QUOTES = (("「", "」"), ("『", "』"), ("“", "”"), ("«", "»"))
"""An end inside an open quotation is no sentence end (``「本当？」と聞いた。`` is one sentence); a quoted
sentence that closes one is joined with the next, which errs towards longer sentences."""


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph: ends at ``. ! ? …`` followed by space (not after an abbreviation or a
    single letter, not before a lower-case letter), and at ``。！？`` (Chinese, Japanese), ``؟`` (Arabic)
    and ``।`` (Devanagari) with or without space."""
    text = normalize_space(text)
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        piece = text[start:end]
        following = text[match.end() : match.end() + 1]
        if not following:
            continue
        latin_end = text[end - 1 : end] not in "。！？؟।"
        if latin_end and (following.islower() or _ABBREVIATION.search(piece)):
            continue
        if any(piece.count(left) > piece.count(right) for left, right in _QUOTES):
            continue  # an end inside a quotation: 「本当？」と聞いた。 is one sentence
        sentences.append(piece.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


_WORD = re.compile(r"\w+", re.UNICODE)


def word_set(text: str, lang: str) -> frozenset[str]:
    """Lower-cased words; character bigrams for languages without spaces."""
    if lang in UNSPACED_LANGUAGES:
        letters = [c for c in text if c.isalnum()]
        return frozenset(a + b for a, b in zip(letters, letters[1:]))
    return frozenset(w.lower() for w in _WORD.findall(text))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets."""
    return len(a & b) / len(a | b) if a or b else 0.0


def similar_length(candidate: str, answer: str, tolerance: float = LENGTH_TOLERANCE) -> bool:
    return abs(len(candidate) - len(answer)) <= tolerance * len(answer)


@lru_cache(maxsize=1 << 16)
def _folded(text: str) -> str:
    return normalize_space(text).casefold()


def pick_distractors(
    answer: str,
    candidates: Sequence[str],
    lang: str,
    rng: random.Random,
    *,
    count: int = NUM_CHOICES - 1,
    hard: bool = True,
    exclude: frozenset[str] = frozenset(),
    words: Callable[[str], frozenset[str]] | None = None,
) -> list[str] | None:
    """``count`` distinct candidates of similar length to ``answer``, never equal to it (after whitespace
    normalisation and case folding) nor in ``exclude``; with ``hard``, drawn from the
    :data:`HARD_NEGATIVE_POOL` that share the most words with it. ``None`` when too few fit.

    ``words`` maps a text to its word set (pass a cached one when the same candidates recur)."""
    key = _folded(answer)
    seen = {key} | {_folded(e) for e in exclude}
    fitting = []
    for candidate in candidates:
        folded = _folded(candidate)
        if folded in seen or not similar_length(candidate, answer):
            continue
        seen.add(folded)
        fitting.append(candidate)
    if len(fitting) < count:
        return None
    if hard:
        words = words or (lambda text: word_set(text, lang))
        reference = words(answer)
        # The seeded shuffle breaks ties in overlap; the sort is stable.
        rng.shuffle(fitting)
        fitting.sort(key=lambda c: overlap(reference, words(c)), reverse=True)
        fitting = fitting[: max(count, HARD_NEGATIVE_POOL)]
    return rng.sample(fitting, count)


def _min_chars(lang: str) -> int:
    return MIN_CHARS_UNSPACED if lang in UNSPACED_LANGUAGES else MIN_CHARS


def _usable(text: str, lang: str) -> bool:
    return _min_chars(lang) <= len(text) <= MAX_CHARS and any(c.isalpha() for c in text)


def _item(
    lang: str,
    context: str,
    answer: str,
    distractors: list[str],
    delimiter: str,
    item_id: str,
    rng: random.Random,
) -> Item:
    """The item whose choices are ``distractors`` with ``answer`` put at a random place, each after
    ``delimiter`` (the space or sentence joiner that continues ``context``)."""
    label = rng.randrange(len(distractors) + 1)
    choices = list(distractors)
    choices.insert(label, answer)
    return Item(
        lang=lang, context=context, choices=tuple(delimiter + c for c in choices), label=label, id=item_id
    )


# ----------------------------------------------------------------------------------------------------------
# Held-out documents
# ----------------------------------------------------------------------------------------------------------


def evaluation_document_ids(source: str, languages: Sequence[str]) -> set[str]:
    """``doc_id`` of every evaluation document of ``source`` in each language that has it as documents."""
    from polysparse.sparsify.calibration import split_source

    held_out: set[str] = set()
    for lang in languages:
        if source == "gettext" and lang == "en":
            continue  # the English side of a catalogue is its message ids, not a document
        try:
            _, evaluation = split_source(SourceSpec.of(source, Language.iso_code(lang)))
        except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError):
            continue  # gettext has no English documents: the English side is the message ids
        held_out |= {d.doc_id for d in evaluation}
    return held_out


def held_out_pairs(pairs, source: str, languages: Sequence[str]):
    """The pairs all of whose documents are evaluation documents."""
    held_out = evaluation_document_ids(source, languages)
    return [p for p in pairs if all(d in held_out for d in pair_document_ids(p.pair_id))]


# ----------------------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------------------


def _available_languages(source: str) -> str:
    from polysparse.sparsify.corpora import available_corpora

    try:
        return ", ".join(sorted({info.lang for info in available_corpora((source,))})) or "none"
    except (ValueError, OSError):
        return "(cannot list)"


def _load_or_explain(load, spec: TaskSpec, source: str):
    try:
        return load()
    except (EmptyCorpusError, UnknownLanguageError, FileNotFoundError) as error:
        raise TaskError(
            f"{spec.name}: {error}; {source} has these languages here: {_available_languages(source)}"
        ) from None


def translation_items(spec: TaskSpec, seed: int = 0, limit: int | None = None) -> list[Item]:
    """Held-out pairs as items, in a seeded order, the first ``limit`` that find distractors (a smaller
    ``limit`` gives a prefix of a larger one's items)."""
    pairs = _load_or_explain(
        lambda: load_parallel(
            ParallelSpec.of(spec.source, Language.iso_code(spec.src), Language.iso_code(spec.tgt))
        ),
        spec,
        spec.source,
    )
    pairs = held_out_pairs(pairs, spec.source, (spec.src, spec.tgt))
    rows, seen = [], set()
    for pair in pairs:
        src, tgt = normalize_space(pair.src), normalize_space(pair.tgt)
        if not (_usable(src, spec.src) and _usable(tgt, spec.tgt)) or src in seen:
            continue
        seen.add(src)
        rows.append((src, tgt, pair.pair_id))
    targets = sorted({tgt for _, tgt, _ in rows}, key=lambda t: (len(t), t))
    lengths = [len(t) for t in targets]
    words = lru_cache(maxsize=None)(lambda text: word_set(text, spec.tgt))
    src_name, tgt_name = language_name(spec.src), language_name(spec.tgt)
    rng = random.Random(f"{spec.name}:{seed}")
    rng.shuffle(rows)
    items = []
    for src, tgt, pair_id in rows:
        if limit is not None and len(items) >= limit:
            break
        # Only candidates within the length window: a bisect range of the length-sorted targets.
        low, high = len(tgt) * (1 - LENGTH_TOLERANCE), len(tgt) * (1 + LENGTH_TOLERANCE)
        window = targets[bisect_left(lengths, low) : bisect_right(lengths, high)]
        distractors = pick_distractors(tgt, window, spec.tgt, rng, words=words)
        if distractors is None:
            continue
        items.append(_item(spec.lang, f"{src_name}: {src}\n{tgt_name}:", tgt, distractors, " ", pair_id, rng))
    if not items:
        raise TaskError(f"{spec.name}: no held-out pair with {NUM_CHOICES - 1} distractors of similar length")
    return items


def continuation_items(spec: TaskSpec, seed: int = 0) -> list[Item]:
    """One item per held-out paragraph of two or more sentences plus the one to predict."""
    from polysparse.sparsify.calibration import split_source

    # SOURCE is a source name (handbook) or a name and the argument before the language (text:notes.txt).
    name, _, location = spec.source.partition(":")
    language = Language.iso_code(spec.lang)
    source_spec = SourceSpec.of(name, f"{location}:{language}" if location else language)
    _, evaluation = _load_or_explain(lambda: split_source(source_spec), spec, name)
    if not evaluation:
        raise TaskError(f"{spec.name}: {source_spec} has no held-out documents (it is a single document)")
    joiner = "" if spec.lang in UNSPACED_LANGUAGES else " "
    rng = random.Random(f"{spec.name}:{seed}")
    items = []
    for document in evaluation:
        paragraphs = [split_sentences(p) for p in document.text.split("\n\n")]
        for index, sentences in enumerate(paragraphs):
            if len(sentences) < 3:
                continue
            inside = set(sentences)
            others = [
                s
                for j, other in enumerate(paragraphs)
                if j != index
                for s in other
                if s not in inside and _usable(s, spec.lang)
            ]
            # Every cut point: held-out text is scarce (15% of a book's pages; a few hundred paragraphs of
            # three or more sentences per language), so each paragraph of n sentences gives n - 2 items.
            for k in range(2, len(sentences)):
                answer = sentences[k]
                if not _usable(answer, spec.lang):
                    continue
                distractors = pick_distractors(answer, others, spec.lang, rng, hard=False)
                if distractors is None:
                    continue
                item_id = f"{document.doc_id}#{index}.{k}"
                context = joiner.join(sentences[:k])
                items.append(_item(spec.lang, context, answer, distractors, joiner, item_id, rng))
    rng.shuffle(items)
    if not items:
        raise TaskError(
            f"{spec.name}: no held-out paragraph has three sentences and distractors of similar length"
        )
    return items


def build_items(spec: TaskSpec | str, *, seed: int = 0, limit: int | None = None) -> list[Item]:
    """The items of one task, at most ``limit`` of them (the first after the seeded shuffle)."""
    if isinstance(spec, str):
        spec = parse_task(spec)
    if limit is not None and limit < 1:
        raise TaskError(f"--limit must be at least 1, got {limit}")
    if spec.kind == "file":
        items = read_items(Path(spec.path))
    elif spec.kind == "translation-choice":
        items = translation_items(spec, seed, limit)
    else:
        items = continuation_items(spec, seed)
    return items if limit is None else items[:limit]
