"""``polysparse export``: a sparse checkpoint, or a folder pruned 2:4 by ``polysparse prune``, written as
dense, compressed or compressed-tensors (:mod:`polysparse.runtime.checkpoint` does the writing)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from polysparse.bench.guards import check_output_folder
from polysparse.bench.report import say as _say
from polysparse.sparsify.config import SPARSE24, ConfigError
from polysparse.sparsify.loading import load_causal_lm
from polysparse.sparsify.output import REPORT_FILE, check_output, clean_stale_partials, read_report


def export_job(*, model: str, format: str, out: str, overwrite: bool = False, quiet: bool = False) -> Path:
    """Write a sparse checkpoint, or a folder written by ``polysparse prune --pattern 2:4``, as dense,
    compressed or compressed-tensors."""
    from polysparse.runtime.checkpoint import CheckpointError, export, is_sparse_checkpoint

    source = Path(model)
    if not source.is_dir():
        what = "does not exist" if not source.exists() else "is a file"
        raise CheckpointError(f"{source} {what}; export takes a sparse checkpoint or a folder pruned 2:4")
    out_dir = check_output(check_output_folder(out, [source]), overwrite)
    clean_stale_partials(out_dir)  # a killed export's copies, before this one writes its own
    if not is_sparse_checkpoint(source) and (source / REPORT_FILE).is_file():
        path = _export_pruned_folder(source, out_dir, format, overwrite)
    else:
        path = export(source, out_dir, format, overwrite=overwrite)
    size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    _say(f"wrote {path} ({format}, {size / 2**20:.1f} MiB of safetensors)", quiet)
    return path


def _export_pruned_folder(source: Path, out: Path, format: str, overwrite: bool) -> Path:
    """Compress a pruned HF folder after checking that every layer its report lists as pruned is 2:4."""
    from polysparse.runtime.checkpoint import (
        EXPORT_FORMATS,
        NotSparse24Error,
        SparsityMetadata,
        export,
        save_sparse,
    )
    from polysparse.runtime.swap import sparsify_model

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    report = read_report(source)
    pattern = (report.get("config") or {}).get("pattern")
    if pattern != str(SPARSE24):
        raise NotSparse24Error(
            f"{source} was pruned {'with pattern ' + pattern if pattern else 'unstructured'}; only 2:4 "
            "folders have a sparse format (the folder itself is the dense export)"
        )
    lm, tokenizer = load_causal_lm(source)
    swap = sparsify_model(lm, backend="dense")
    swapped = {layer.name for layer in swap.swapped}
    not_24 = [layer["name"] for layer in report.get("layers", []) if layer["name"] not in swapped]
    if not_24:
        raise NotSparse24Error(
            f"{source}: {len(not_24)} layers that polysparse.json lists as pruned 2:4 are not 2:4 in the "
            f"weights (e.g. {not_24[0]}); was the folder changed after pruning?"
        )
    metadata = SparsityMetadata.from_report(report)
    if format == "compressed":
        return save_sparse(
            lm, out, tokenizer=tokenizer, source=source, metadata=metadata, overwrite=overwrite
        )
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    try:
        save_sparse(lm, staging, tokenizer=tokenizer, source=source, metadata=metadata, overwrite=True)
        return export(staging, out, format, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["export_job"]
