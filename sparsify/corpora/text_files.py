"""``text:PATH[:LANG]``: the user's own txt or jsonl files (globs allowed)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from polysparse.sparsify.corpora.documents import Document, EmptyCorpusError
from polysparse.sparsify.corpora.languages import UNDETERMINED, UnknownLanguageError, normalize_language

MIN_DOCUMENT_CHARS = 2000
"""Plain-text files are cut at paragraph breaks into documents of at least this many characters, so that a
single file can still be split into calibration and evaluation parts by document."""


def parse_text_argument(argument: str) -> tuple[str, str]:
    """Split ``PATH[:LANG]`` into the path pattern and the language (``und`` when none is given)."""
    if ":" in argument:
        path, maybe_lang = argument.rsplit(":", 1)
        try:
            return path, normalize_language(maybe_lang)
        except UnknownLanguageError:
            if not Path(argument).exists() and not glob.glob(argument):
                raise
    return argument, UNDETERMINED


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
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{path}:{line_number}: a jsonl record needs a string field 'text'")
            texts.append(text)
    return texts


def load_text_documents(argument: str) -> list[Document]:
    pattern, lang = parse_text_argument(argument)
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True)) or (
        [Path(pattern)] if Path(pattern).is_file() else []
    )
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise EmptyCorpusError(f"text:{argument}: no file matches {pattern!r}")
    documents = []
    for path in paths:
        if path.suffix == ".jsonl":
            texts = [t.strip() for t in _jsonl_texts(path)]
        else:
            texts = _paragraph_documents(path.read_text(encoding="utf-8", errors="replace"))
        documents += [
            Document(text=t, lang=lang, source="text", doc_id=f"text/{path.name}/{i}")
            for i, t in enumerate(texts)
            if t
        ]
    if not documents:
        raise EmptyCorpusError(f"text:{argument}: the matching files hold no text")
    return documents
