"""Parsed source and parallel specs: what the loaders take.

``handbook:de`` is written once, on the command line; :meth:`SourceSpec.parse` turns it into the source's
name, its argument and the requested :class:`~polysparse.sparsify.corpora.languages.Language` (normalised
here, once: the loaders read ``language.iso`` and ``language.variant`` and never parse a code again). A
spec renders back to the text as written (``str(spec)``) for messages and records only.

Pure Python: importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from polysparse.sparsify.corpora.documents import SourceSpecError
from polysparse.sparsify.corpora.hf_datasets import split_hf_argument
from polysparse.sparsify.corpora.languages import Language
from polysparse.sparsify.corpora.text_files import parse_text_argument


@dataclass(frozen=True)
class SourceSpec:
    """Documents of one source: ``NAME:ARGUMENT`` parsed.

    ``language`` is the requested language (``None`` where the spec names none, ``text:notes.txt``);
    ``location`` is what the argument names besides it: the path pattern of ``text:``, the
    ``DATASET[:CONFIG[:SPLIT]]`` of ``hf:``, empty for the installed sources (their argument is the language).
    """

    source: str
    argument: str
    language: Language | None
    location: str = ""

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """``handbook:de``, ``text:corpus/*.txt:de``, ``hf:allenai/c4:de:train:de``."""
        name, sep, argument = text.partition(":")
        if not sep or not argument:
            raise SourceSpecError(f"source spec {text!r} is not of the form NAME:ARGUMENT (e.g. handbook:de)")
        return cls.of(name, argument)

    @classmethod
    def of(cls, source: str, argument: str | Language) -> SourceSpec:
        """The spec of ``source`` with ``argument``: a language (given parsed or as written) for the installed
        sources, the source's own argument grammar for ``text`` and ``hf``. Whether ``source`` exists is
        :func:`~polysparse.sparsify.corpora.load_documents`' question (a spec is grammar only)."""
        written = str(argument)
        if source == "text":
            pattern, language = parse_text_argument(written)
            return cls(source, written, language, pattern)
        if source == "hf":
            head, language = split_hf_argument(written)
            return cls(source, written, language, head)
        return cls(source, written, Language.of(argument))

    @property
    def record_language(self) -> str | None:
        """The language for records: its ISO 639-1 code, as written when unknown, ``None`` when none named."""
        if self.language is None:
            return None
        return self.language.iso or self.language.written

    def __str__(self) -> str:
        return f"{self.source}:{self.argument}"


@dataclass(frozen=True)
class ParallelSpec:
    """Aligned text of one parallel source: ``SOURCE:LANG`` (LANG -> English) or ``SOURCE:SRC->TGT`` parsed.

    Both languages are known (parsing refuses an unknown one); a variant (``zh-TW``) narrows what is read."""

    source: str
    src: Language
    tgt: Language

    @classmethod
    def parse(cls, text: str) -> ParallelSpec:
        """``gettext:de`` (German -> English), ``handbook:en->ja``, ``install-guide:German->French``."""
        source, sep, languages = text.partition(":")
        if not sep or not languages:
            raise SourceSpecError(f"parallel spec {text!r} is not of the form SOURCE:LANG or SOURCE:SRC->TGT")
        src, arrow, tgt = languages.partition("->")
        return cls.of(source, src if arrow else languages, tgt if arrow else Language.iso_code("en"))

    @classmethod
    def of(cls, source: str, src: str | Language, tgt: str | Language) -> ParallelSpec:
        from polysparse.sparsify.corpora.parallel import check_parallel_source

        check_parallel_source(source)
        return cls(source, Language.of(src).known(), Language.of(tgt).known())

    def __str__(self) -> str:
        return f"{self.source}:{self.src}->{self.tgt}"
