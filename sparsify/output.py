"""Writing a pruned model: an HF folder (safetensors) plus ``polysparse.json``, atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from polysparse.sparsify import strict_json

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


def check_output_file(out: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """A file to write: a place this process can write (:func:`check_output_location`), not a folder, and
    not an existing file unless ``overwrite``. The one rule for every file output, checked before any work:
    an existing file is never replaced without ``--overwrite``."""
    path = check_output_location(out, flag)
    if path.is_dir():
        raise OutputLocationError(f"{path} is a folder; {flag} takes a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another {flag} or pass --overwrite")
    return path


def check_distinct_outputs(outputs: dict[str, str | Path]) -> None:
    """Refuse two outputs of one run that are the same file (``--dump-items X --out X``): one would
    silently replace the other. ``outputs`` maps what each output is (``--out``) to its path."""
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        resolved = Path(path).resolve()
        if resolved in seen:
            raise OutputLocationError(
                f"{what} and {seen[resolved]} are the same file ({path}); give them different names"
            )
        seen[resolved] = what


def check_not_input(
    out: str | Path, inputs: Iterable[str | Path | None], flag: str = "--out", holding: bool = True
) -> None:
    """Refuse an output that is one of the run's inputs, or (``holding``) a folder that holds one.

    Outputs are written whole and replace what was there (``--overwrite`` removes an old output folder), so
    ``--model runs/base --out runs --overwrite`` would delete the model before it is read, and
    ``--dump-items notes.txt`` would replace calibration text. An output inside an input folder
    (``--out model/pruned``) replaces nothing and is allowed, and so is a results folder that files are
    only added to (``study``, ``bench``: ``holding=False``) around an input. The one rule for every
    command, checked before any work.
    """
    target = Path(out).resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if source == target:
            raise OutputLocationError(
                f"{flag} {out} is an input of this run ({item}); writing it would replace what the run "
                f"reads: choose another {flag}"
            )
        if holding and target in source.parents:
            raise OutputLocationError(
                f"{flag} {out} holds an input of this run ({item}); writing it would replace what the run "
                f"reads: choose another {flag}"
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale_partials(out_dir: str | Path) -> list[Path]:
    """Remove the ``.<out>.partial-<pid>`` and ``.<out>.staging-<pid>`` folders of processes that died
    while writing ``out_dir``.

    A run killed while saving leaves its half-written copy (a whole model) beside the output, and a killed
    ``export`` its staging copy; the next run removes them and says so. Folders whose process still lives
    are left alone and reported, and so is a ``.<out>.old-<pid>`` (the previous output an interrupted
    ``--overwrite`` was replacing: the user's data, not polysparse's to delete). Returns the folders
    removed.
    """
    out = Path(out_dir)
    removed = []
    if not out.parent.is_dir():
        return removed
    pattern = re.compile(re.escape(f".{out.name}.") + r"(partial|staging|old)-(\d+)")
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


class ReportError(ValueError):
    """A ``polysparse.json`` that cannot be read as a pruning report (damaged or edited by hand)."""


# The parts of a report that readers index, and the JSON type each must have.
_REPORT_SHAPE = {"config": dict, "calibration": dict, "summary": dict, "layers": list}


def read_report(folder: str | Path) -> dict[str, Any]:
    """The pruning report of a folder written by ``polysparse prune``, checked for the shape its readers
    rely on (an object; ``config``, ``calibration`` and ``summary`` objects; ``layers`` a list of objects with
    a ``name``), so a damaged file is named instead of failing somewhere inside the reader."""
    path = Path(folder) / REPORT_FILE
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{folder} has no {REPORT_FILE}") from None
    except UnicodeDecodeError as error:
        raise ReportError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not valid JSON ({error})") from None
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(report, dict):
        raise ReportError(f"{path} holds a JSON {type(report).__name__}, not a pruning report (an object)")
    for key, kind in _REPORT_SHAPE.items():
        if key in report and not isinstance(report[key], kind):
            raise ReportError(
                f"{path}: {key!r} is a {type(report[key]).__name__}, a pruning report has a "
                f"{'list' if kind is list else 'object'} there"
            )
    for index, layer in enumerate(report.get("layers", [])):
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            raise ReportError(f"{path}: layers[{index}] has no 'name' (the layer it describes)")
    return report


def drop_inherited_sparsity_record(folder: Path) -> None:
    """Remove a ``sparsity_config`` that ``config.json`` carried over from the input model.

    A pruned output describes its weights in ``polysparse.json``; the ``sparsity_config`` of an input that
    was itself a sparse export (``polysparse export --format dense``) claims another pattern, method and
    file manifest, and ``export`` and ``bench`` would trust it ("the manifest says ...")."""
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if "sparsity_config" in config:
        del config["sparsity_config"]
        path.write_text(strict_json.dumps(config, sort_keys=True) + "\n", encoding="utf-8")
        log.info("the input's sparsity_config is not carried into %s (polysparse.json describes it)", folder)


def write_report(folder: Path, report: dict[str, Any]) -> None:
    (folder / REPORT_FILE).write_text(strict_json.dumps(report) + "\n", encoding="utf-8")


def save_pruned(
    model, tokenizer, out_dir: str | Path, report: dict[str, Any], overwrite: bool = False
) -> Path:
    """Save an HF folder (safetensors) with ``polysparse.json``; never leaves a half-written ``out_dir``."""
    with atomic_output_folder(out_dir, overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        drop_inherited_sparsity_record(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_report(tmp, report)
    return Path(out_dir)
