"""Finished pieces of long runs (study cells, benchmark cells), one JSON file each, so a run that is
interrupted resumes where it stopped: a file that exists is a cell that is never recomputed."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from polysparse.bench.report import write_json

log = logging.getLogger("polysparse.bench")


def cell_key(label: str, parts: dict[str, Any]) -> str:
    """``<label>-<12 hex digits>``: a readable prefix and a hash of everything that changes the cell."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    return f"{slug}-{digest}"


class CellStore:
    """``folder/<group>/<name>.json`` per finished cell (written atomically)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, group: str, name: str) -> Path:
        return self.folder / group / f"{name}.json"

    def get(self, group: str, name: str) -> dict[str, Any] | None:
        path = self._path(group, name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("ignoring unreadable cell %s (it will be recomputed)", path)
            return None

    def put(self, group: str, name: str, value: dict[str, Any]) -> None:
        write_json(self._path(group, name), value)
