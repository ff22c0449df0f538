"""Collect the front-end proof runs (bench/scripts/front_end_proof.sh) into one JSON and Markdown table.

Also loads every pruned folder with plain ``transformers`` and counts its zeros, so the table says that
the saved output is a normal Hugging Face model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from polysparse.bench.report import environment, markdown_table, write_json

RUNS = ("magnitude-2-4", "magnitude-50", "wanda-2-4", "sparsegpt-50")


def _zeros_in_blocks(folder: Path) -> float:
    from transformers import AutoModelForCausalLM

    from polysparse.sparsify.model_graph import find_decoder_stack, prunable_layers, weight_matrix

    model = AutoModelForCausalLM.from_pretrained(folder)
    stack = find_decoder_stack(model)
    zeros = total = 0
    for i, block in enumerate(stack.blocks):
        for layer in prunable_layers(block, stack.block_name(i)).values():
            w = weight_matrix(layer)
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total


def collect(runs: Path, stem: Path) -> dict:
    dense = json.loads((runs / "eval-dense.json").read_text())["results"][0]
    rows = [["dense", "-", f"{dense['perplexity']:.2f}", "1.00", "-", "-"]]
    entries = {"dense": {"perplexity": dense["perplexity"], "tokens": dense["tokens"]}}
    for run in RUNS:
        report = json.loads((runs / run / "polysparse.json").read_text())
        result = json.loads((runs / f"eval-{run}.json").read_text())["results"][0]
        zeros = _zeros_in_blocks(runs / run)
        config = report["config"]
        label = config["pattern"] or f"{config['sparsity']:.0%}"
        entries[run] = {
            "method": config["method"],
            "sparsity": label,
            "perplexity": result["perplexity"],
            "prune_wall_seconds": report["wall_seconds"],
            "prune_seconds": report["summary"]["seconds"],
            "zeros_in_block_linears_after_reload": zeros,
            "calibration": report["calibration"],
        }
        rows.append(
            [
                config["method"],
                label,
                f"{result['perplexity']:.2f}",
                f"{result['perplexity'] / dense['perplexity']:.2f}",
                f"{zeros:.2%}",
                f"{report['wall_seconds']:.0f}",
            ]
        )
    table = markdown_table(
        [
            "method",
            "sparsity",
            "held-out de perplexity",
            "ratio to dense",
            "zeros after reload",
            "prune wall time (s)",
        ],
        rows,
    )
    calibration = entries["wanda-2-4"]["calibration"]
    header = (
        f"Gemma 3 270M pruned for German: calibration {calibration['windows']} windows x "
        f"{calibration['seqlen']} tokens of handbook:de; perplexity on "
        f"{dense['windows']} held-out windows x {dense['seqlen']} tokens ({dense['tokens']} scored tokens). "
        "Command: bench/scripts/front_end_proof.sh\n\n"
    )
    payload = {"runs": entries, "environment": environment()}
    write_json(stem.with_suffix(".json"), payload)
    stem.with_suffix(".md").write_text(header + table, encoding="utf-8")
    print(header + table)
    return payload


if __name__ == "__main__":
    collect(Path(sys.argv[1]), Path(sys.argv[2]))
