"""What the resume fingerprint costs: one SHA-256 pass over every byte of the model's weights.

A checkpointed ``polysparse prune`` fingerprints the model before its first block, so that a working folder
is never resumed after the model was edited in place (issue 14). Loaded models are hashed in memory
(:func:`~polysparse.sparsify.checkpointing.model_signature`); streamed models (``--stream on``), whose
blocks are not in memory, hash their safetensors files
(:meth:`~polysparse.sparsify.streaming.SafetensorsCheckpoint.content_digest`) on top of the parameters
outside the blocks. This script times both against the time to load the model, on Gemma 3 270M and on the
random Llama of :mod:`polysparse.bench.experiments.large_model_proof`, and writes
``bench/results/reliability/fingerprint-cost.json`` and ``.md``.

``python -P -m polysparse.bench.experiments.fingerprint_cost --work runs/large`` (builds the 3.4 GB model
there if needed; ``--large-layers 4`` builds a smaller one of the same width).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from polysparse.bench.report import environment, markdown_table, write_json


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def measure(folder: Path, label: str, repeats: int = 2) -> dict[str, Any]:
    """Seconds to load the model, to hash it in memory, and to hash its files (best of ``repeats``)."""
    from polysparse.sparsify.checkpointing import model_signature
    from polysparse.sparsify.loading import load_causal_lm
    from polysparse.sparsify.streaming import SafetensorsCheckpoint

    files_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    started = time.perf_counter()
    model, _ = load_causal_lm(folder, tokenizer=False)
    load_seconds = time.perf_counter() - started
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    memory, files = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        model_signature(model)
        memory.append(time.perf_counter() - started)
    del model
    checkpoint = SafetensorsCheckpoint(folder)
    for _ in range(repeats):
        started = time.perf_counter()
        checkpoint.content_digest()
        files.append(time.perf_counter() - started)
    return {
        "model": label,
        "folder": str(folder),
        "safetensors_bytes": files_bytes,
        "parameter_bytes": param_bytes,
        "load_seconds": load_seconds,
        "hash_in_memory_seconds": min(memory),
        "hash_files_seconds": min(files),
        "all_in_memory_seconds": memory,
        "all_files_seconds": files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="the small model (default gemma-3-270m)")
    parser.add_argument("--work", default="runs/large", help="folder for the large random model")
    parser.add_argument(
        "--large-layers", type=int, default=None, help="blocks of the random Llama (default 14: 3.4 GB)"
    )
    parser.add_argument("--out", default="bench/results/reliability/fingerprint-cost")
    args = parser.parse_args(argv)

    from polysparse.bench.assets import resolve_model
    from polysparse.bench.experiments.large_model_proof import CONFIG, build_model

    config = dict(CONFIG)
    name = "random-llama"
    if args.large_layers is not None and args.large_layers != CONFIG["num_hidden_layers"]:
        config["num_hidden_layers"] = args.large_layers
        name = f"random-llama-{args.large_layers}-blocks"
    large = Path(args.work) / name
    build_model(large, config)

    load_before = _load_average()
    rows = [measure(resolve_model(args.model), args.model), measure(large, name)]
    load_after = _load_average()
    payload = {
        "hash": "sha256",
        "runs": rows,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_threads_visible": os.cpu_count(),
        "environment": environment("cpu"),
    }
    stem = Path(args.out)
    write_json(stem.with_suffix(".json"), payload)
    table = markdown_table(
        ["model", "weights (GB)", "hash in memory (s)", "GB/s", "hash files (s)", "GB/s"],
        [
            [
                r["model"],
                f"{r['safetensors_bytes'] / 1e9:.2f}",
                f"{r['hash_in_memory_seconds']:.2f}",
                f"{r['parameter_bytes'] / 1e9 / r['hash_in_memory_seconds']:.2f}",
                f"{r['hash_files_seconds']:.2f}",
                f"{r['safetensors_bytes'] / 1e9 / r['hash_files_seconds']:.2f}",
            ]
            for r in rows
        ],
    )
    text = (
        "Cost of the resume fingerprint (SHA-256 of every weight byte) on CPU, best of two. 'In memory' "
        "hashes the loaded parameters (the first pass also pages in the memory-mapped weights), 'files' the "
        "safetensors files as a streamed run does (read right after loading: from the page cache). Load "
        f"average {load_before} before, {load_after} after ({os.cpu_count()} CPU threads). "
        "Command: python -P -m polysparse.bench.experiments.fingerprint_cost\n\n" + table
    )
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
