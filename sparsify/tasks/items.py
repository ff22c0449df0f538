"""Multiple-choice items: the one format every task reduces to, and its JSONL file form.

A line of a task file is ``{"lang": "de", "context": "...", "choices": ["...", ...], "label": 0}`` with an
optional ``"id"``. Delimiter convention (lm-eval's): each choice string carries its own leading space or
newline, and is scored as the tokens that ``context + choice`` has past the tokens of ``context``; nothing
is inserted between them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from polysparse.sparsify import strict_json
from polysparse.sparsify.corpora import normalize_language
from polysparse.sparsify.corpora.text_files import read_text_strict


class TaskError(ValueError):
    """A task spec, item or task file the user gave cannot be used (the CLI exits with status 2)."""


@dataclass(frozen=True)
class Item:
    """One multiple-choice question: ``choices[label]`` is the answer."""

    lang: str
    context: str
    choices: tuple[str, ...]
    label: int
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        problem = item_problem(self.context, self.choices, self.label)
        if problem:
            raise TaskError(f"item {self.id or '(no id)'}: {problem}")

    @property
    def chance(self) -> float:
        return 1.0 / len(self.choices)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data


def item_problem(context: object, choices: object, label: object) -> str | None:
    """What is wrong with an item's fields, or ``None``."""
    if not isinstance(context, str):
        return "'context' must be a string"
    if not isinstance(choices, (list, tuple)) or not all(isinstance(c, str) for c in choices):
        return "'choices' must be a list of strings"
    if len(choices) < 2:
        return f"needs at least two choices, has {len(choices)}"
    if any(not c for c in choices):
        return "a choice is the empty string (it would have no tokens to score)"
    if not isinstance(label, int) or isinstance(label, bool):
        return "'label' must be an integer"
    if not 0 <= label < len(choices):
        return f"label {label} is out of range for {len(choices)} choices (0..{len(choices) - 1})"
    return None


REQUIRED_FIELDS = ("lang", "context", "choices", "label")


def read_items(path: str | Path) -> list[Item]:
    """Items of a JSONL task file; a bad line raises :class:`TaskError` naming the file and line."""
    path = Path(path)
    if path.is_dir():
        raise TaskError(f"task file {path} is a folder; file: takes one JSONL file (file:{path}/items.jsonl)")
    if not path.is_file():
        raise TaskError(f"task file {path} does not exist")
    items = []
    # Strict decoding in the command's --encoding (UTF-8 unless told), a bad byte named by line and column.
    text = read_text_strict(path)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TaskError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise TaskError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing:
            raise TaskError(f"{where}: missing field(s) {', '.join(missing)}")
        problem = item_problem(record["context"], record["choices"], record["label"])
        if problem:
            raise TaskError(f"{where}: {problem}")
        try:
            lang = normalize_language(str(record["lang"]))
        except ValueError as error:
            raise TaskError(f"{where}: {error}") from None
        items.append(
            Item(
                lang=lang,
                context=record["context"],
                choices=tuple(record["choices"]),
                label=record["label"],
                id=str(record.get("id", f"{path.name}:{number}")),
            )
        )
    if not items:
        raise TaskError(f"task file {path} holds no items")
    return items


def write_items(path: str | Path, items: Iterable[Item]) -> Path:
    """Write items as JSONL (the format :func:`read_items` reads), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(strict_json.dumps(item.to_dict(), indent=None, ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


def chance_level(items: Sequence[Item]) -> float:
    """Expected accuracy of a uniform guess (mean of ``1 / len(choices)``)."""
    return sum(item.chance for item in items) / len(items)
