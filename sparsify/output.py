"""Writing a pruned model: an HF folder (safetensors) plus ``polysparse.json``, atomically."""

from __future__ import annotations

import json
import os
import shutil
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


def save_pruned(
    model, tokenizer, out_dir: str | Path, report: dict[str, Any], overwrite: bool = False
) -> Path:
    """Save into a temporary sibling folder, then rename: a crash never leaves a half-written ``out_dir``."""
    out = check_output(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
