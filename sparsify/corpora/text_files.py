"""``text:PATH[:LANG]``: the user's own txt or jsonl files (globs allowed)."""

from __future__ import annotations

import codecs
import contextlib
import glob
import json
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError
from polysparse.sparsify.corpora.languages import UNDETERMINED, Language

if TYPE_CHECKING:
    from polysparse.sparsify.corpora.specs import SourceSpec

MIN_DOCUMENT_CHARS = 2000
"""Plain-text files are cut at paragraph breaks into documents of at least this many characters, so that a
single file can still be split into calibration and evaluation parts by document."""


_ENCODING: ContextVar[str] = ContextVar("polysparse_text_encoding", default="utf-8")


class TextEncodingError(ValueError):
    """A text file that does not decode in the encoding asked for."""


class TextFormatError(ValueError):
    """A ``.jsonl`` file whose line is not a JSON record with a string field ``text``."""


@contextlib.contextmanager
def text_encoding(encoding: str) -> Iterator[str]:
    """Read ``text:`` files in ``encoding`` (default UTF-8) inside the block; decoding stays strict."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise TextEncodingError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    token = _ENCODING.set(name)
    try:
        yield name
    finally:
        _ENCODING.reset(token)


def read_text_strict(path: Path) -> str:
    """The file decoded strictly; a bad byte is named by file, line, column and value.

    Replacing undecodable bytes (``errors="replace"``) would calibrate a Latin-1 file with every accented
    letter turned into U+FFFD and no word said, so a wrong encoding stops the run instead.
    """
    data = path.read_bytes()
    encoding = _ENCODING.get()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise TextEncodingError(
            f"{path}:{line}:{column}: byte 0x{data[error.start]:02x} (offset {error.start}) is not valid "
            f"{encoding}; if the file is in another encoding, pass it with --encoding "
            "(e.g. --encoding latin-1)"
        ) from None


def parse_text_argument(argument: str) -> tuple[str, Language | None]:
    """Split ``PATH[:LANG]`` into the path pattern and the language (``None`` when none is given).

    A last ``:PIECE`` that is no known language belongs to the path when that path exists."""
    if ":" in argument:
        path, maybe_lang = argument.rsplit(":", 1)
        language = Language.parse(maybe_lang)
        if language.iso is not None:
            return path, language
        if not Path(argument).exists() and not glob.glob(argument):
            language.known()  # raises: an unknown language, and no such path
    return argument, None


def _paragraph_documents(text: str) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        current.append(paragraph)
        size += len(paragraph)
        if size >= MIN_DOCUMENT_CHARS:
            chunks.append("\n\n".join(current))
            current, size = [], 0
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _jsonl_texts(path: Path) -> list[str]:
    texts = []
    # split("\n"), not splitlines(): a JSON string may hold U+2028 and other line separators verbatim.
    for line_number, line in enumerate(read_text_strict(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TextFormatError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise TextFormatError(f"{path}:{line_number}: a jsonl record needs a string field 'text'")
        texts.append(text)
    return texts


def load_text_documents(spec: SourceSpec) -> list[Document]:
    """Paragraph groups of the files a parsed ``text:PATH[:LANG]`` names (``.jsonl``: one record each)."""
    pattern, argument = spec.location, spec.argument
    lang = spec.language.code if spec.language is not None else UNDETERMINED
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True)) or (
        [Path(pattern)] if Path(pattern).is_file() else []
    )
    paths = [p for p in paths if p.is_file()]
    if not paths and Path(pattern).is_dir():
        raise EmptyCorpusError(
            f"text:{argument}: {pattern} is a folder; name its files, e.g. "
            f"text:{argument.replace(pattern, str(Path(pattern) / '*.txt'), 1)}"
        )
    if not paths:
        raise EmptyCorpusError(f"text:{argument}: no file matches {pattern!r}")
    documents = []
    for path in paths:
        if path.suffix == ".jsonl":
            texts = [t.strip() for t in _jsonl_texts(path)]
        else:
            texts = _paragraph_documents(read_text_strict(path))
        documents += [
            Document(text=t, lang=lang, source="text", doc_id=f"text/{path.name}/{i}")
            for i, t in enumerate(texts)
            if t
        ]
    if not documents:
        raise EmptyCorpusError(f"text:{argument}: the matching files hold no text")
    return documents
