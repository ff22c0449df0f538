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


MODELS_FILE = "models.json"
"""Beside the cells: the content fingerprint of every model whose cells the folder holds."""


class StaleCellsError(ValueError):
    """A cells folder whose cells were computed from other weights of the same model name or path."""


class CellStore:
    """``folder/<group>/<name>.json`` per finished cell (written atomically)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def check_model(self, model: str, fingerprint: str) -> None:
        """Refuse cells of other weights than the model has now.

        Cells are keyed by the model's name or path (the keys of finished cells never change, so that they
        stay valid), not by its weights: a model folder saved again with other weights would be served the
        old cells. So the first run into a folder records each model's content fingerprint in
        ``models.json``, and a later run whose model files changed is refused. A folder without the file
        (cells from before this check) records the current fingerprint and goes on.
        """
        path = self.folder / MODELS_FILE
        models: dict[str, Any] = {}
        if path.exists():
            try:
                models = json.loads(path.read_text(encoding="utf-8"))["models"]
            except (OSError, ValueError, KeyError, TypeError):
                raise StaleCellsError(
                    f"{path} is unreadable; it records which weights the cells in {self.folder} were "
                    "computed from: pass another --cells folder to start fresh"
                ) from None
        recorded = models.get(model, {}).get("fingerprint") if isinstance(models, dict) else None
        if recorded == fingerprint:
            return
        if recorded is not None:
            raise StaleCellsError(
                f"the cells in {self.folder} were computed from other weights of {model} (its files changed "
                f"since {path} recorded them: fingerprint {recorded[:12]}, now {fingerprint[:12]}); pass "
                f"another --cells (or --out) to start fresh, or remove {self.folder} to recompute every cell"
            )
        earlier = self.folder.is_dir() and any(p.is_dir() for p in self.folder.iterdir())
        log.log(
            logging.WARNING if earlier else logging.INFO,
            "recorded the fingerprint of %s in %s%s",
            model,
            path,
            "; the cells already there are taken to be of these weights" if earlier else "",
        )
        write_json(path, {"models": {**models, model: {"fingerprint": fingerprint}}})

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
