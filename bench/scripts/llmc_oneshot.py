"""llm-compressor's oneshot on polysparse's calibration windows: run with llm-compressor's own environment.

    /work/venv-llmc/bin/python bench/scripts/llmc_oneshot.py --model DIR --windows windows.pt \\
        --recipe "sparsegpt 2:4" --out OUT

``windows.pt`` holds the exact token windows polysparse calibrates on (``input_ids`` and
``attention_mask``, one row per window; written by
``python -P -m polysparse.bench.experiments.llmc_side_by_side windows``), fed to ``oneshot`` as a DataLoader
so that no tokenisation, shuffling or truncation of llm-compressor's changes them. Writes the pruned model
(uncompressed safetensors) to ``OUT`` and ``OUT/llmc.json`` with the wall times: load, oneshot (calibration
and pruning) and save. This file imports nothing from polysparse: llm-compressor pins its own transformers,
so it lives in its own environment.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def modifier(recipe: str):
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    words = recipe.split()
    method, amount = words[0], words[1]
    kwargs: dict = {"targets": ["re:.*layers\\.\\d+\\..*_proj$"], "ignore": ["re:.*lm_head"]}
    if ":" in amount:
        kwargs.update(sparsity=0.5, mask_structure=amount)
    else:
        kwargs.update(sparsity=float(amount), mask_structure="0:0")
    if "+owl" in words:
        kwargs.update(sparsity_profile="owl", owl_m=5, owl_lmbda=0.08)
    if method == "sparsegpt":
        return SparseGPTModifier(block_size=128, dampening_frac=0.01, **kwargs)
    if method == "wanda":
        return WandaPruningModifier(**kwargs)
    raise SystemExit(f"unknown method {method!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--windows", required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    windows = torch.load(args.windows)
    rows = [
        {"input_ids": ids.unsqueeze(0), "attention_mask": mask.unsqueeze(0)}
        for ids, mask in zip(windows["input_ids"], windows["attention_mask"])
    ]
    loader = torch.utils.data.DataLoader(rows, batch_size=None, shuffle=False)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    loaded = time.perf_counter()
    oneshot(
        model=model,
        dataset=loader,
        recipe=modifier(args.recipe),
        num_calibration_samples=len(rows),
        max_seq_length=windows["input_ids"].shape[1],
        pipeline="sequential",
    )
    pruned = time.perf_counter()
    out = Path(args.out)
    model.save_pretrained(out, safe_serialization=True)
    saved = time.perf_counter()
    record = {
        "tool": "llmcompressor",
        "recipe": args.recipe,
        "windows": len(rows),
        "seqlen": int(windows["input_ids"].shape[1]),
        "load_seconds": loaded - started,
        "oneshot_seconds": pruned - loaded,
        "save_seconds": saved - pruned,
        "wall_seconds": saved - started,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }
    (out / "llmc.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
