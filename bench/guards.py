"""What the commands check about their paths before any work: which paths are a run's inputs, and that no
output is or holds one (:func:`~polysparse.sparsify.output.check_not_input`), replaces an existing file
without ``--overwrite`` (:func:`~polysparse.sparsify.output.check_output_file`) or lands on another output
(:func:`~polysparse.sparsify.output.check_distinct_outputs`)."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from polysparse.sparsify.calibration_spec import CalibrationSpec, SourcePart
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.corpora import SourceSpec
from polysparse.sparsify.output import (
    OutputLocationError,
    check_distinct_outputs,
    check_not_input,
    check_output_file,
    check_output_location,
)
from polysparse.sparsify.tasks import parse_tasks


def source_files(spec: SourceSpec) -> list[Path]:
    """The user's files a ``text:`` source names (the matches of its pattern); installed sources and
    data sets are nobody's output, so they name none."""
    if spec.source != "text":
        return []
    return [Path(path) for path in glob.glob(spec.location, recursive=True)] or [Path(spec.location)]


def calibration_files(calib: CalibrationSpec | str | None) -> list[Path]:
    """The user's files among the parts of a calibration spec."""
    if not isinstance(calib, CalibrationSpec):
        return []
    parts = [part for part in calib.parts if isinstance(part, SourcePart)]
    return [path for part in parts for path in source_files(part.parsed)]


def task_files(tasks: str | None) -> list[Path]:
    """The ``file:PATH`` task files of a ``--tasks`` value."""
    if not tasks:
        return []
    return [Path(task.path) for task in parse_tasks(tasks) if task.kind == "file"]


def check_output_folder(
    out: str | Path, inputs: Iterable[str | Path | None], flag: str = "--out", results: bool = False
) -> Path:
    """A folder output: a writable place (:func:`check_output_location`), not an existing file, not an
    input, and, unless it is a ``results`` folder that files are only added to (``study``, ``bench``), not a
    folder holding an input (a pruned model or an export replaces the whole folder)."""
    path = check_output_location(out, flag)
    check_not_input(path, inputs, flag, holding=not results)
    if path.exists() and not path.is_dir():
        raise OutputLocationError(f"{flag} {path} is a file; {flag} takes a folder")
    return path


def check_eval_outputs(
    out: str | None, dump_items: str | None, overwrite: bool, inputs: Sequence[str | Path | None]
) -> None:
    """``eval``'s files: ``--out`` (JSON, and Markdown beside it) and ``--dump-items``, each a new file (or
    ``--overwrite``), none of them an input, no two the same file. Checked before the model loads."""
    outputs: dict[str, Path] = {}
    if out is not None:
        outputs["--out"] = Path(out)
        outputs["the Markdown beside --out"] = Path(out).with_suffix(".md")
    if dump_items is not None:
        outputs["--dump-items"] = Path(dump_items)
    for what, path in outputs.items():
        flag = "--out" if what != "--dump-items" else what
        check_output_file(path, overwrite, flag)
        check_not_input(path, inputs, flag)
    check_distinct_outputs(outputs)


def check_positive(**values: int | None) -> None:
    """Refuse counts below one (``--windows 0``, ``--batch-size -1``) before anything runs."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
