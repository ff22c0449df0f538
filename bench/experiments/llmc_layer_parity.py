"""SparseGPT layer by layer, polysparse against llm-compressor: the same weight, the same Hessian.

End-to-end perplexities of the two tools differ by a few percent in either direction (the side-by-side tables
in ``bench/results/llmc/``), and one tool's own result moves by about as much when only its thread count
changes. This separates the solve from the model's forward pass: every prunable layer of a few decoder
blocks gets one weight and one Hessian (the dense model's inputs on 16 calibration windows), both tools
prune it, and the table compares

* the masks (fraction of weights on which they agree);
* the layer objective ``tr(dW H dW^T) / tr(W H W^T)`` (``dW`` = original - pruned), which both methods
  minimise: the quantity that says which solve is better, not only whether they differ;
* the largest weight difference, relative to the largest weight.

Steps (``bench/scripts/llmc_layer_parity.sh`` runs them):

1. ``dump``: weights and ``H = 2/n X^T X`` (float64 sums, stored float32) -> ``layers.pt``;
2. ``bench/scripts/llmc_layer_solve.py`` in llm-compressor's environment: its ``sparsify_weight`` on each
   layer -> ``llmc.pt``;
3. ``compare``: polysparse's ``prune_sparsegpt`` (the function the driver calls) on the same inputs, one
   table -> ``layer-parity.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from statistics import geometric_mean
from typing import Any

import torch

from polysparse.bench.report import environment, markdown_table, write_json

SETTINGS = ("2:4", "0.5")
"""The equal settings of the side-by-side runs: SparseGPT 2:4 and 50% unstructured, blocks of 128, damping
0.01."""


class _LastBlockDone(Exception):
    pass


def dump_layers(model: str, calib: str, nsamples: int, seqlen: int, seed: int, blocks: list[int], out: Path):
    """Write ``{layer: {weight, hessian, tokens}}`` for the prunable layers of ``blocks``."""
    from polysparse.bench.assets import resolve_model
    from polysparse.sparsify.calibration import calibration_windows
    from polysparse.sparsify.calibration_spec import CalibrationSpec
    from polysparse.sparsify.loading import load_causal_lm
    from polysparse.sparsify.model_graph import find_decoder_stack, prunable_layers, weight_matrix
    from polysparse.sparsify.stats import LayerStatistics

    lm, tokenizer = load_causal_lm(resolve_model(model), "float32")
    windows = calibration_windows(CalibrationSpec.parse(calib), tokenizer, nsamples, seqlen, seed)
    stack = find_decoder_stack(lm)
    layers: dict[str, torch.nn.Module] = {}
    for index in blocks:
        layers.update(prunable_layers(stack.blocks[index], stack.block_name(index)))
    stats = {
        name: LayerStatistics(weight_matrix(layer).shape[1], want_hessian=True, dtype=torch.float64)
        for name, layer in layers.items()
    }
    mask_of_batch: list[torch.Tensor] = []

    def hook(name: str):
        def record(_module, args):
            stats[name].add(args[0], mask_of_batch[0])

        return record

    def stop(_module, _args, _output):
        raise _LastBlockDone  # nothing after the last dumped block is needed (least of all the lm_head)

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    handles.append(stack.blocks[max(blocks)].register_forward_hook(stop))
    try:
        with torch.no_grad():
            for row in range(windows.input_ids.shape[0]):
                ids = windows.input_ids[row : row + 1]
                attention = windows.attention_mask[row : row + 1]
                mask_of_batch[:] = [attention.bool()]  # the hooks drop padding, as the driver's do
                with contextlib.suppress(_LastBlockDone):
                    lm(input_ids=ids, attention_mask=attention, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    payload = {
        name: {
            "weight": weight_matrix(layer).detach().float().clone(),
            "hessian": stats[name].hessian().float(),
            "tokens": stats[name].ntokens,
        }
        for name, layer in layers.items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"layers": payload, "calib": calib, "nsamples": nsamples, "seqlen": seqlen, "seed": seed}, out)


def layer_objective(original: torch.Tensor, pruned: torch.Tensor, hessian: torch.Tensor) -> float:
    """``tr(dW H dW^T) / tr(W H W^T)`` in float64: the relative output error SparseGPT minimises."""
    h = hessian.double()
    delta = (original - pruned).double()
    return float(((delta @ h) * delta).sum() / ((original.double() @ h) * original.double()).sum())


def _polysparse_solve(weight: torch.Tensor, hessian: torch.Tensor, setting: str) -> torch.Tensor:
    from polysparse.sparsify.config import NMPattern, PruneConfig
    from polysparse.sparsify.methods.sparsegpt import prune_sparsegpt
    from polysparse.sparsify.stats import LayerStatistics

    stats = LayerStatistics(weight.shape[1], want_hessian=True)
    # hessian() is xtx * 2 / ntokens: with ntokens = 2 it hands back exactly the Hessian llm-compressor gets
    stats.xtx, stats.ntokens = hessian.clone(), 2
    if ":" in setting:
        config = PruneConfig(method="sparsegpt", pattern=NMPattern.parse(setting))
    else:
        config = PruneConfig(method="sparsegpt", sparsity=float(setting))
    return prune_sparsegpt(weight, stats, config).weight


def compare(layers_file: Path, llmc_file: Path, out: Path) -> dict[str, Any]:
    dumped = torch.load(layers_file)
    theirs = torch.load(llmc_file)
    rows: list[dict[str, Any]] = []
    for name, entry in dumped["layers"].items():
        weight, hessian = entry["weight"], entry["hessian"]
        for setting in SETTINGS:
            started = time.perf_counter()
            ours = _polysparse_solve(weight, hessian, setting)
            seconds = time.perf_counter() - started
            other = theirs["layers"][name][setting]
            scale = weight.abs().max().item()
            rows.append(
                {
                    "layer": name,
                    "setting": setting,
                    "mask_agreement": float(((ours != 0) == (other != 0)).float().mean()),
                    "objective_polysparse": layer_objective(weight, ours, hessian),
                    "objective_llmcompressor": layer_objective(weight, other, hessian),
                    "max_weight_difference": float((ours - other).abs().max() / scale),
                    "seconds_polysparse": seconds,
                    "seconds_llmcompressor": theirs["seconds"][name][setting],
                }
            )
    summary = {setting: summarise([r for r in rows if r["setting"] == setting]) for setting in SETTINGS}
    payload = {
        "calibration": {k: dumped[k] for k in ("calib", "nsamples", "seqlen", "seed")},
        "summary": summary,
        "llmcompressor": theirs.get("versions", {}),
        "rows": rows,
        "environment": environment(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "layer-parity.json", payload)
    headers = ["layer", "setting", "masks agree", "objective polysparse", "objective llm-compressor",
               "polysparse / llmc", "max |dW| / max |W|"]  # fmt: skip
    body = [
        [
            row["layer"],
            row["setting"],
            f"{row['mask_agreement']:.5f}",
            f"{row['objective_polysparse']:.6g}",
            f"{row['objective_llmcompressor']:.6g}",
            f"{row['objective_polysparse'] / row['objective_llmcompressor']:.5f}",
            f"{row['max_weight_difference']:.2e}",
        ]
        for row in rows
    ]
    cal = payload["calibration"]
    note = (
        "SparseGPT on the same weight and Hessian (dense inputs, "
        f"{cal['nsamples']} x {cal['seqlen']} windows of `{cal['calib']}`, seed {cal['seed']}), blocks of "
        "128, damping 0.01. Objective: tr(dW H dW^T) / tr(W H W^T), which both tools minimise (lower is "
        "better)."
    )
    lines = [
        f"- {setting}: {item['layers']} layers; masks agree on at least {item['min_mask_agreement']:.4%} of "
        f"the weights; objective polysparse / llm-compressor from {item['min_ratio']:.5f} to "
        f"{item['max_ratio']:.5f} (geometric mean {item['geomean_ratio']:.5f}); polysparse's objective lower "
        f"or equal on {item['polysparse_lower_or_equal']} of {item['layers']} layers"
        for setting, item in summary.items()
    ]
    text = note + "\n\n" + "\n".join(lines) + "\n\n" + markdown_table(headers, body) + "\n"
    (out / "layer-parity.md").write_text(text, encoding="utf-8")
    return payload


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One setting's rows in a few numbers: the worst mask agreement and the spread of the objective ratio."""
    ratios = [r["objective_polysparse"] / r["objective_llmcompressor"] for r in rows]
    return {
        "layers": len(rows),
        "min_mask_agreement": min(r["mask_agreement"] for r in rows),
        "min_ratio": min(ratios),
        "max_ratio": max(ratios),
        "geomean_ratio": geometric_mean(ratios),
        "polysparse_lower_or_equal": sum(x <= 1.0 for x in ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m polysparse.bench.experiments.llmc_layer_parity")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", default="gemma-3-270m")
    d.add_argument("--calib", default="handbook:de")
    d.add_argument("--nsamples", type=int, default=16)
    d.add_argument("--seqlen", type=int, default=512)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--blocks", default="0,8,17", help="decoder block indices, comma-separated")
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--layers", required=True)
    c.add_argument("--llmc", required=True)
    c.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "dump":
        blocks = [int(b) for b in args.blocks.split(",")]
        dump_layers(args.model, args.calib, args.nsamples, args.seqlen, args.seed, blocks, Path(args.out))
    else:
        compare(Path(args.layers), Path(args.llmc), Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
