"""The calibration spec, parsed once: a mixture of document sources and few-shot translation prompts.

Grammar (what ``--calib`` takes)::

    SPEC      := PART ("," PART)*
    PART      := SOURCE ["=" WEIGHT]  |  TRANSLATE ["=" WEIGHT]
    SOURCE    := NAME ":" ARGUMENT                      handbook:de, text:notes/*.txt:de, hf:c4:en:train:en
    TRANSLATE := "translate:" SRC "->" TGT ":" PARALLEL ("," "shots=" K)*
                                                        translate:de->en:gettext,shots=4

Comma-separated pieces without a ``:`` (``shots=4``) are options of the part before them. Weights are
normalised to sum to 1 (a single part weighs 1). :meth:`CalibrationSpec.parse` checks the grammar only;
which sources and languages exist here is the loaders' question, and they answer it with the installed
languages listed. Languages are normalised once here: a document part holds its parsed
:class:`~polysparse.sparsify.corpora.SourceSpec` (whose language keeps a locale variant such as ``zh-TW``,
which narrows what the loader reads), and ``polysparse.json`` records :meth:`CalibrationSpec.to_dict`.
Code that builds a spec (the study's rows) does so from parts (:meth:`CalibrationSpec.of`), never from text.

Pure Python: importable without torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from polysparse.sparsify.corpora.documents import SourceSpecError
from polysparse.sparsify.corpora.languages import Language, normalize_language
from polysparse.sparsify.corpora.specs import ParallelSpec, SourceSpec

TRANSLATE_PREFIX = "translate:"
DEFAULT_SHOTS = 4


@dataclass(frozen=True)
class SourcePart:
    """Documents of one source: the parsed ``NAME:ARGUMENT`` (which the loaders take) and its weight."""

    parsed: SourceSpec
    weight: float = 1.0

    @property
    def spec(self) -> str:
        """The part as written (``handbook:de``)."""
        return str(self.parsed)

    @property
    def source(self) -> str:
        return self.parsed.source

    @property
    def argument(self) -> str:
        return self.parsed.argument

    @property
    def language(self) -> str | None:
        """The part's language for the record, ``None`` where the spec names none (``text:notes.txt``)."""
        return self.parsed.record_language

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "source",
            "spec": self.spec,
            "source": self.source,
            "language": self.language,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class TranslatePart:
    """``translate:SRC->TGT:PARALLEL[,shots=K]``: few-shot translation prompts (Kim et al. 2024).

    ``spec`` is the part as written (it names the windows); ``src`` and ``tgt`` are normalised."""

    spec: str
    src: str
    tgt: str
    source: str
    shots: int = DEFAULT_SHOTS
    weight: float = 1.0

    @property
    def language(self) -> str:
        return f"{self.src}->{self.tgt}"

    @property
    def parallel(self) -> ParallelSpec:
        """The aligned pairs the prompts are built from (``gettext:de->en``; languages already normalised)."""
        return ParallelSpec(self.source, Language.iso_code(self.src), Language.iso_code(self.tgt))

    @property
    def parallel_spec(self) -> str:
        """:attr:`parallel` as text, for humans."""
        return str(self.parallel)

    @classmethod
    def of(
        cls, src: str, tgt: str, source: str, shots: int = DEFAULT_SHOTS, weight: float = 1.0
    ) -> TranslatePart:
        """The part for ISO 639-1 codes ``src`` -> ``tgt`` (already normalised); its text is rendered."""
        return cls(f"{TRANSLATE_PREFIX}{src}->{tgt}:{source},shots={shots}", src, tgt, source, shots, weight)

    @classmethod
    def parse(cls, text: str, weight: float = 1.0) -> TranslatePart:
        if not text.startswith(TRANSLATE_PREFIX):
            raise SourceSpecError(f"{text!r} is not a translate: spec")
        head, *options = text[len(TRANSLATE_PREFIX) :].split(",")
        languages, sep, source = head.partition(":")
        src, arrow, tgt = languages.partition("->")
        if not (sep and arrow and src and tgt and source):
            raise SourceSpecError(
                f"malformed translation spec {text!r}; expected translate:SRC->TGT:PARALLEL_SOURCE[,shots=K] "
                "such as translate:de->en:gettext,shots=4"
            )
        shots = DEFAULT_SHOTS
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() != "shots" or not value.strip().isdigit() or int(value) < 1:
                raise SourceSpecError(
                    f"unknown or invalid option {option!r} in {text!r} (known: shots=K, K >= 1)"
                )
            shots = int(value)
        return cls(text, normalize_language(src), normalize_language(tgt), source, shots, weight)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "translate",
            "spec": self.spec,
            "source": self.source,
            "language": self.language,
            "src": self.src,
            "tgt": self.tgt,
            "shots": self.shots,
            "weight": self.weight,
        }


CalibrationPart = SourcePart | TranslatePart


@dataclass(frozen=True)
class CalibrationSpec:
    """A parsed ``--calib``: its parts with normalised weights, and the text as the user wrote it."""

    parts: tuple[CalibrationPart, ...]
    text: str

    @classmethod
    def parse(cls, text: str | CalibrationSpec) -> CalibrationSpec:
        if isinstance(text, CalibrationSpec):
            return text
        weighted = _split_weights(_components(text))
        parts = tuple(
            TranslatePart.parse(component, weight)
            if component.startswith(TRANSLATE_PREFIX)
            else SourcePart(SourceSpec.parse(component), weight)
            for component, weight in weighted
        )
        return cls(parts, text)

    @classmethod
    def of(cls, parts: Sequence[CalibrationPart]) -> CalibrationSpec:
        """A spec built from parsed parts, weights normalised to sum to 1 (a single part weighs 1); its
        text (``handbook:de=0.5,handbook:en=0.5``) is rendered for humans and records."""
        if not parts:
            raise SourceSpecError("empty calibration spec")
        if len(parts) == 1:
            return cls((replace(parts[0], weight=1.0),), parts[0].spec)
        total = sum(part.weight for part in parts)
        weighted = tuple(replace(part, weight=part.weight / total) for part in parts)
        return cls(weighted, ",".join(f"{part.spec}={part.weight:.6g}" for part in weighted))

    @property
    def language(self) -> str | None:
        """The languages of the parts, joined by ``+`` (``de+en``), or ``None`` when no part names one."""
        known = [part.language for part in self.parts if part.language]
        return "+".join(dict.fromkeys(known)) if known else None

    @property
    def source(self) -> str:
        """The sources of the parts, joined by ``+`` (translation prompts marked as such)."""
        names = [
            f"{part.source} (translation prompts)" if isinstance(part, TranslatePart) else part.source
            for part in self.parts
        ]
        return "+".join(dict.fromkeys(names))

    def summary(self) -> dict[str, Any]:
        """``{"spec", "language", "source"}``: what a checkpoint's ``sparsity_config`` records."""
        return {"spec": self.text, "language": self.language, "source": self.source}

    def to_dict(self) -> dict[str, Any]:
        """The structured record in ``polysparse.json``: the summary plus every part."""
        return {**self.summary(), "parts": [part.to_dict() for part in self.parts]}

    def __str__(self) -> str:
        return self.text


def _components(text: str) -> list[str]:
    components: list[str] = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if ":" in piece or not components:
            components.append(piece)
        else:  # an option of the previous component (",shots=4")
            components[-1] += "," + piece
    if not components:
        raise SourceSpecError("empty calibration spec")
    return components


def _split_weights(components: list[str]) -> list[tuple[str, float]]:
    """``a:x=0.5`` -> ``("a:x", 0.5)``; weights normalised to sum to 1, a single part weighs 1."""
    parsed: list[tuple[str, float]] = []
    for component in components:
        head, sep, weight = component.rpartition("=")
        # ``...,shots=4`` is an option (a bare name before "="), ``...=0.5`` a weight.
        is_option = re.fullmatch(r"[A-Za-z_]\w*", head.split(",")[-1]) is not None
        if sep and ":" in head and "," not in weight and not is_option:
            try:
                value = float(weight)
            except ValueError:
                parsed.append((component, 1.0))
                continue
            if not value > 0:
                raise SourceSpecError(f"mixture weight must be positive in {component!r}")
            parsed.append((head, value))
        else:
            parsed.append((component, 1.0))
    if len(parsed) == 1:
        return [(parsed[0][0], 1.0)]
    total = sum(w for _, w in parsed)
    return [(s, w / total) for s, w in parsed]
