"""What a sparse checkpoint records about itself: the format constants and the provenance of its weights
(:class:`SparsityMetadata`, written into ``config.json``'s ``sparsity_config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from polysparse.runtime.checkpoint.errors import CheckpointError
from polysparse.sparsify.calibration_spec import CalibrationSpec
from polysparse.sparsify.config import SPARSE24
from polysparse.sparsify.corpora import SourceSpecError, UnknownLanguageError
from polysparse.sparsify.output import REPORT_FILE, ReportError, package_version, read_report

FORMAT_NATIVE = "polysparse-sparse24"
FORMAT_DENSE = "dense"
FORMAT_BITMASK = "sparse-24-bitmask"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1: metadata rows of ``in/16`` words. Version 2: rows padded to 16 bytes (``padded_meta_shape``)."""
NATIVE_WEIGHTS = "model.sparse24.safetensors"
HF_WEIGHTS = "model.safetensors"
EXPORT_FORMATS = ("dense", "compressed", "compressed-tensors")


def describe_calibration(spec: str | None) -> dict[str, Any]:
    """``{"spec", "language", "source"}`` from a calibration spec such as ``handbook:de``,
    ``text:notes.txt:de``, ``translate:de->en:gettext,shots=4`` or ``handbook:de=0.5,handbook:en=0.5``.

    Reports written since the spec is recorded structured carry these fields themselves; this reads the
    spec string of older ones (with sparsify's one grammar; a string it cannot parse gives no language)."""
    if not spec:
        return {"spec": spec, "language": None, "source": None}
    try:
        return CalibrationSpec.parse(spec).summary()
    except (SourceSpecError, UnknownLanguageError):
        return {"spec": spec, "language": None, "source": None}


def _calibration_summary(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded ``language`` and ``source`` of a report's calibration block, else parsed from its spec."""
    if "language" in calibration and "source" in calibration:
        return {key: calibration.get(key) for key in ("spec", "language", "source")}
    return describe_calibration(calibration.get("spec"))


@dataclass(frozen=True)
class SparsityMetadata:
    """How the sparse weights came about; written into ``config.json``'s ``sparsity_config``."""

    method: str | None = None
    pattern: str = str(SPARSE24)
    sparsity: float | None = None
    calibration_spec: str | None = None
    calibration_language: str | None = None
    calibration_source: str | None = None
    polysparse_version: str | None = None

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> SparsityMetadata:
        """From a ``polysparse.json`` pruning report (``config``, ``calibration``, ``summary``)."""
        config = report.get("config") or {}
        calibration = _calibration_summary(report.get("calibration") or {})
        summary = report.get("summary") or {}
        return cls(
            method=config.get("method"),
            pattern=config.get("pattern") or str(SPARSE24),
            sparsity=summary.get("sparsity_of_pruned_layers"),
            calibration_spec=calibration["spec"],
            calibration_language=calibration["language"],
            calibration_source=calibration["source"],
            polysparse_version=report.get("polysparse_version"),
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> SparsityMetadata | None:
        if not (Path(folder) / REPORT_FILE).is_file():
            return None
        try:
            return cls.from_report(read_report(folder))
        except ReportError as error:
            raise CheckpointError(str(error)) from None

    @classmethod
    def from_config_block(cls, block: Mapping[str, Any]) -> SparsityMetadata:
        calibration = block.get("calibration") or {}
        return cls(
            method=block.get("method"),
            pattern=block.get("pattern", str(SPARSE24)),
            sparsity=block.get("sparsity"),
            calibration_spec=calibration.get("spec"),
            calibration_language=calibration.get("language"),
            calibration_source=calibration.get("source"),
            polysparse_version=block.get("polysparse_version"),
        )

    def to_block(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "method": self.method,
            "sparsity": self.sparsity,
            "calibration": {
                "spec": self.calibration_spec,
                "language": self.calibration_language,
                "source": self.calibration_source,
            },
            "polysparse_version": self.polysparse_version or package_version(),
        }


def resolve_metadata(
    model: nn.Module, metadata: SparsityMetadata | None, source: str | Path | None
) -> SparsityMetadata:
    if metadata is not None:
        return metadata
    if source is not None:
        found = SparsityMetadata.from_folder(source)
        if found is not None:
            return found
    block = getattr(getattr(model, "config", None), "sparsity_config", None)
    if isinstance(block, Mapping):
        return SparsityMetadata.from_config_block(block)
    return SparsityMetadata()
