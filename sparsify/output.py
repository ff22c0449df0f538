"""Writing a pruned model: an HF folder (safetensors) plus ``polysparse.json``, atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPORT_FILE = "polysparse.json"
"""The pruning report written beside the weights; the runtime reads it back for provenance."""

log = logging.getLogger("polysparse.sparsify")


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


class OutputLocationError(ValueError):
    """An output path that names no folder, or a place this process cannot write to."""


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_location(out: str | Path, flag: str = "--out") -> Path:
    """Refuse an output path that names nothing (``""``, ``.``) or lies where nothing can be written.

    Called before any work: the nearest existing folder above ``out`` must be a folder this process can
    create files in (checked by creating and removing a probe file, which also catches read-only mounts and
    root on a read-only file system, where ``os.access`` says yes).
    """
    text = str(out)
    if not text.strip():
        raise OutputLocationError(f"{flag} is empty; give the path of the output")
    path = Path(text)
    if path.name in ("", ".", ".."):
        raise OutputLocationError(f"{flag} {text!r} names no new file or folder; give e.g. runs/pruned")
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise OutputLocationError(f"cannot write {path}: {anchor} is a file, not a folder")
    probe = anchor / f".polysparse-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputLocationError(
            f"cannot write {path}: {anchor} is not writable ({error.strerror})"
        ) from None
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale_partials(out_dir: str | Path) -> list[Path]:
    """Remove the ``.<out>.partial-<pid>`` folders of processes that died while writing ``out_dir``.

    A run killed while saving leaves its half-written copy (a whole model) beside the output; the next run
    removes it and says so. Folders whose process still lives are left alone and reported, and so is a
    ``.<out>.old-<pid>`` (the previous output an interrupted ``--overwrite`` was replacing: the user's data,
    not polysparse's to delete). Returns the folders removed.
    """
    out = Path(out_dir)
    removed = []
    if not out.parent.is_dir():
        return removed
    pattern = re.compile(re.escape(f".{out.name}.") + r"(partial|old)-(\d+)")
    for candidate in sorted(out.parent.iterdir()):
        match = pattern.fullmatch(candidate.name)
        if not match or not candidate.is_dir():
            continue
        pid = int(match.group(2))
        if pid == os.getpid():
            continue
        if match.group(1) == "old":  # a previous output, not ours to delete
            if not _pid_alive(pid):
                log.warning(
                    "%s holds the output that an --overwrite run (pid %d) was replacing when it was "
                    "interrupted; remove it if you do not need it",
                    candidate,
                    pid,
                )
            continue
        if _pid_alive(pid):
            log.warning("%s belongs to a running process (pid %d); left alone", candidate, pid)
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        log.warning("removed %s, left by an interrupted save (pid %d, no longer running)", candidate, pid)
        removed.append(candidate)
    return removed


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
    clean_stale_partials(out)
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


def package_version() -> str:
    """The installed polysparse version (recorded in reports and checkpoints); ``unknown`` in a bare tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polysparse")
    except PackageNotFoundError:
        return "unknown"


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
