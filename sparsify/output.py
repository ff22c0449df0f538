"""Writing a pruned model: an HF folder (safetensors) plus ``polysparse.json``, atomically."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPORT_FILE = "polysparse.json"


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


def check_output(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output folder unless ``overwrite``; called before any work starts."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; choose another --out or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder")
    return out


@contextlib.contextmanager
def atomic_output_folder(out_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``out_dir`` in one rename.

    A crash (or an exception) inside leaves ``out_dir`` as it was and removes the temporary folder.
    """
    out = check_output(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_report(folder: Path, report: dict[str, Any]) -> None:
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def save_pruned(
    model, tokenizer, out_dir: str | Path, report: dict[str, Any], overwrite: bool = False
) -> Path:
    """Save an HF folder (safetensors) with ``polysparse.json``; never leaves a half-written ``out_dir``."""
    with atomic_output_folder(out_dir, overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_report(tmp, report)
    return Path(out_dir)
