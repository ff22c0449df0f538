"""The one JSON writer of the project: strict JSON, written atomically.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: strict readers (``jq``,
JavaScript's ``JSON.parse``, Go, Rust's serde) reject the whole file. A non-finite float here means "no
value" (a standard error of one item, a ratio over nothing), so it is written as ``null``; the paths of the
values replaced are logged. Every JSON file polysparse writes (reports, results, cells, working state, task
items) goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("polysparse.sparsify")


def finite(value: Any, path: str = "$", replaced: list[str] | None = None) -> Any:
    """``value`` with every non-finite float (at any depth of dicts, lists and tuples) replaced by ``None``.

    ``replaced`` collects the JSON paths of the values replaced (``$.tasks[0].acc_stderr``).
    """
    if isinstance(value, float) and not math.isfinite(value):
        if replaced is not None:
            replaced.append(path)
        return None
    if isinstance(value, dict):
        return {key: finite(item, f"{path}.{key}", replaced) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item, f"{path}[{index}]", replaced) for index, item in enumerate(value)]
    return value


def dumps(value: Any, *, indent: int | None = 2, sort_keys: bool = False, **options: Any) -> str:
    """Strict JSON text of ``value``: non-finite floats become ``null`` (logged), objects JSON does not
    know become their ``str``; ``allow_nan=False`` guarantees that nothing else slips through."""
    replaced: list[str] = []
    clean = finite(value, replaced=replaced)
    if replaced:
        shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
        log.info("JSON has no NaN or Infinity: wrote null for %s", shown)
    options.setdefault("default", str)
    return json.dumps(clean, indent=indent, sort_keys=sort_keys, allow_nan=False, **options)


def write_json(path: str | Path, payload: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``payload`` as strict JSON atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(payload, indent=indent, sort_keys=sort_keys) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
