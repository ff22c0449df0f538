"""Token windows for calibration and evaluation, built from documents of any source.

Documents are shuffled by seed, tokenized one after another (joined by a blank line) only until enough
tokens exist, and the stream is cut into consecutive windows of ``seqlen`` tokens, each starting with the
tokenizer's BOS token. Variable-length texts (few-shot translation prompts) become one window each, padded
on the right with ``attention_mask`` 0, which keeps padding out of every statistic.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from polysparse.sparsify.calibration_spec import CalibrationSpec, TranslatePart
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.corpora import Document, EmptyCorpusError, SourceSpec

log = logging.getLogger("polysparse.sparsify")


@dataclass(frozen=True)
class TokenWindows:
    """``input_ids`` and ``attention_mask`` of shape (windows x length); mask 0 marks padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    description: str = ""
    languages: tuple[str, ...] | None = None
    """The calibration language of every window (the part of a mixed spec it came from), where known: what
    the language-aware OWL profile groups statistics by. It does not enter the fingerprint."""
    part_windows: tuple[tuple[str, int], ...] | None = None
    """``(part, windows)`` for each part of a calibration spec: the windows each part actually got (fewer
    than asked where its text ran short), recorded in ``polysparse.json``. Not in the fingerprint."""

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.input_ids.shape != self.attention_mask.shape:
            raise ValueError(
                f"input_ids {tuple(self.input_ids.shape)} and attention_mask "
                f"{tuple(self.attention_mask.shape)} must both be (windows x length)"
            )
        if self.input_ids.shape[0] == 0:
            raise EmptyCorpusError(f"no token windows ({self.description or 'empty calibration set'})")
        if self.languages is not None and len(self.languages) != self.input_ids.shape[0]:
            raise ValueError(f"{len(self.languages)} window languages for {self.input_ids.shape[0]} windows")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seqlen(self) -> int:
        return self.input_ids.shape[1]

    @property
    def ntokens(self) -> int:
        return int(self.attention_mask.sum().item())

    def fingerprint(self) -> str:
        """sha256 of the token ids and mask: two runs calibrated on the same windows share it."""
        digest = hashlib.sha256()
        digest.update(str(tuple(self.input_ids.shape)).encode())
        digest.update(self.input_ids.to(torch.int64).contiguous().numpy().tobytes())
        digest.update(self.attention_mask.to(torch.int8).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), batch_size):
            yield (
                self.input_ids[start : start + batch_size],
                self.attention_mask[start : start + batch_size],
            )

    @staticmethod
    def concatenate(parts: Sequence[TokenWindows], description: str = "") -> TokenWindows:
        """Stack window sets, right-padding shorter ones (mask 0)."""
        length = max(p.seqlen for p in parts)

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)

        labelled = all(p.languages is not None for p in parts)
        return TokenWindows(
            input_ids=torch.cat([pad(p.input_ids, 0) for p in parts]),
            attention_mask=torch.cat([pad(p.attention_mask, 0) for p in parts]),
            description=description or " + ".join(p.description for p in parts),
            languages=tuple(lang for p in parts for lang in p.languages) if labelled else None,
        )

    def summary(self) -> dict:
        summary = {
            "description": self.description,
            "windows": len(self),
            "seqlen": self.seqlen,
            "tokens": self.ntokens,
            "sha256": self.fingerprint(),
        }
        if self.part_windows is not None:
            summary["windows_per_part"] = [{"part": part, "windows": n} for part, n in self.part_windows]
        return summary


def _bos_prefix(tokenizer) -> list[int]:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        log.warning("the tokenizer has no BOS token; windows start without one")
        return []
    return [int(bos)]


def windows_from_documents(
    tokenizer,
    documents: Sequence[Document],
    nsamples: int,
    seqlen: int,
    seed: int = 0,
    description: str = "",
) -> TokenWindows:
    """``nsamples`` windows of ``seqlen`` tokens (BOS first), deterministic by ``seed``.

    Raises :class:`EmptyCorpusError` when the documents hold fewer tokens than one window; with fewer than
    ``nsamples`` windows' worth, warns and returns as many as there are.
    """
    if not documents:
        raise EmptyCorpusError(f"no documents to build windows from ({description or 'empty corpus'})")
    prefix = _bos_prefix(tokenizer)
    body = seqlen - len(prefix)
    if body < 1:
        raise ConfigError(f"seqlen={seqlen} leaves no room for text after BOS")
    needed = nsamples * body
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    stream: list[int] = []
    for index in order:
        ids = tokenizer(documents[index].text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        if stream:
            stream.extend(separator)
        stream.extend(ids)
        if len(stream) >= needed:
            break
    available = len(stream) // body
    if available == 0:
        raise EmptyCorpusError(
            f"{description or 'the calibration text'} holds {len(stream)} tokens, fewer than one window of "
            f"{seqlen} (lower --seqlen or give more text)"
        )
    if available < nsamples:
        log.warning(
            "%s: only %d windows of %d tokens available (asked for %d); using %d",
            description or "calibration text",
            available,
            seqlen,
            nsamples,
            available,
        )
    count = min(available, nsamples)
    chunks = torch.tensor(stream[: count * body], dtype=torch.long).reshape(count, body)
    input_ids = torch.cat(
        [torch.tensor([prefix] * count, dtype=torch.long).reshape(count, -1), chunks], dim=1
    )
    return TokenWindows(input_ids, torch.ones_like(input_ids), description)


def windows_from_texts(tokenizer, texts: Sequence[str], seqlen: int, description: str = "") -> TokenWindows:
    """One window per text (BOS first, truncated to ``seqlen``), right-padded to the longest (mask 0)."""
    prefix = _bos_prefix(tokenizer)
    rows = []
    for text in texts:
        ids = (prefix + tokenizer(text, add_special_tokens=False)["input_ids"])[:seqlen]
        if len(ids) > len(prefix):
            rows.append(ids)
    if not rows:
        raise EmptyCorpusError(f"no non-empty texts ({description or 'empty prompt set'})")
    length = max(len(r) for r in rows)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    input_ids = torch.full((len(rows), length), int(pad_id), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return TokenWindows(input_ids, attention_mask, description)


# ----------------------------------------------------------------------------------------------------------
# From source specs to windows
# ----------------------------------------------------------------------------------------------------------

EVAL_FRACTION = 0.15
"""Share of each source's documents held out for evaluation; calibration never sees them."""


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Whole counts summing to ``total`` in the given proportions (largest remainders)."""
    raw = [total * w for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: total - sum(counts)]:
        counts[i] += 1
    return counts


def allocate_parts(total: int, weights: Sequence[float], names: Sequence[str]) -> list[int]:
    """Windows per mixture part: :func:`allocate`, except that a part whose share rounds to no window gets
    one, taken from the part with the most.

    Why one window rather than a warning: a part with none would leave its language out of the calibration
    while ``polysparse.json`` records the mixture as given (``de+en``), and a weight that small is a
    mixture the user asked for all the same. Mixtures where every part gets a window (the study's equal
    mixes among them) keep exactly :func:`allocate`'s counts, so their windows do not change.
    """
    if total < len(weights):
        raise ConfigError(
            f"--nsamples {total} cannot give each of the {len(weights)} parts of the calibration mixture a "
            f"window; use --nsamples {len(weights)} or more"
        )
    counts = allocate(total, weights)
    for index in [i for i, count in enumerate(counts) if count == 0]:
        donor = max(range(len(counts)), key=lambda i: counts[i])
        counts[donor] -= 1
        counts[index] = 1
        log.warning(
            "%s: weight %.3g of %d windows rounds to none; it gets 1 window (taken from %s) so that every "
            "part of the mixture calibrates",
            names[index],
            weights[index],
            total,
            names[donor],
        )
    return counts


def split_source(spec: SourceSpec) -> tuple[list[Document], list[Document]]:
    """(calibration, evaluation) documents of one parsed source spec. The split does not depend on the
    calibration seed, so every run holds out the same documents."""
    from polysparse.sparsify.corpora import load_documents, split_by_document

    documents = load_documents(spec)
    if len(documents) < 2:
        log.warning("%s is a single document: all of it calibrates, none is held out for evaluation", spec)
        return documents, []
    return split_by_document(documents, EVAL_FRACTION, seed=0)


BOOK_SOURCES = ("handbook", "install-guide")
"""Parallel sources whose pages are also evaluation documents: their held-out pages never calibrate."""
HELD_OUT_PARALLEL_SOURCES = ("gettext",)
"""Parallel sources whose catalogues are documents too: pairs of a held-out catalogue never calibrate."""


def translation_windows(
    part: TranslatePart, tokenizer, nsamples: int, seqlen: int, seed: int = 0
) -> TokenWindows:
    """``nsamples`` few-shot translation prompts, one padded window each (padding masked out).

    Pairs from a book source (handbook, installation guide) whose page is held out for evaluation in either
    language are dropped, and so are gettext pairs from a held-out catalogue, so evaluation text (and the
    items of ``translation-choice`` tasks) never calibrates.
    """
    from polysparse.sparsify.corpora import load_parallel, pair_document_ids, translation_prompts

    pairs = load_parallel(part.parallel)
    if part.source in BOOK_SOURCES:
        held_out = set()
        for lang in (part.parallel.src, part.parallel.tgt):
            _, evaluation = split_source(SourceSpec.of(part.source, lang))
            held_out |= {d.doc_id.rsplit("/", 1)[-1] for d in evaluation}
        pairs = [p for p in pairs if p.pair_id.rsplit("/", 1)[-1].split("#")[0] not in held_out]
    elif part.source in HELD_OUT_PARALLEL_SOURCES:
        held_out_ids: set[str] = set()
        for lang in (part.parallel.src, part.parallel.tgt):
            if lang.iso != "en":  # English message ids are no document
                held_out_ids |= {d.doc_id for d in split_source(SourceSpec.of(part.source, lang))[1]}
        pairs = [p for p in pairs if not any(d in held_out_ids for d in pair_document_ids(p.pair_id))]
    prompts = translation_prompts(
        pairs, part.parallel.src, part.parallel.tgt, shots=part.shots, seed=seed, count=nsamples
    )
    return windows_from_texts(tokenizer, prompts, seqlen, description=part.spec)


def calibration_windows(
    spec: CalibrationSpec, tokenizer, nsamples: int, seqlen: int, seed: int = 0
) -> TokenWindows:
    """Calibration windows for a parsed calibration spec: a source, a translation spec, or a mixture.

    Document sources give windows from the calibration side of the document split. Every window is labelled
    with its part's language (``de``, ``de->en`` for translation prompts; the spec where it names none).
    """
    parts = []
    names = [part.spec for part in spec.parts]
    counts = allocate_parts(nsamples, [part.weight for part in spec.parts], names)
    for part, count in zip(spec.parts, counts):
        if isinstance(part, TranslatePart):
            windows = translation_windows(part, tokenizer, count, seqlen, seed)
        else:
            calibration, _ = split_source(part.parsed)
            windows = windows_from_documents(
                tokenizer, calibration, count, seqlen, seed, description=part.spec
            )
        parts.append(replace(windows, languages=(part.language or part.spec,) * len(windows)))
    joined = parts[0] if len(parts) == 1 else TokenWindows.concatenate(parts, description=spec.text)
    return replace(joined, part_windows=tuple((name, len(p)) for name, p in zip(names, parts)))


def evaluation_windows(
    spec: SourceSpec, tokenizer, nwindows: int, seqlen: int, seed: int = 0
) -> TokenWindows:
    """Held-out evaluation windows for one parsed source spec (documents never used for calibration)."""
    _, evaluation = split_source(spec)
    if not evaluation:
        raise EmptyCorpusError(f"{spec} has no held-out documents to evaluate on (it is a single document)")
    return windows_from_documents(
        tokenizer, evaluation, nwindows, seqlen, seed, description=f"{spec} (held out)"
    )
