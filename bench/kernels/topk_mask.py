"""Mask selection benchmark: the Triton top-k kernels against the PyTorch ways of doing the same.

* unstructured, 50% per row (Wanda scores ``|W| * scale``): Triton vs a per-row ``torch.sort`` (the
  reference: stable sort along each row, scatter of the lowest half). Goal on an H100: >= 5x.
* 2:4: Triton vs a vectorised ``torch.topk`` over the rows reshaped into groups of four (and the stable-sort
  reference for completeness). Goal on an H100: >= 2x the ``topk`` path.

Shapes are Llama-3-8B's (out x in): 4096x4096, 14336x4096, 4096x14336; weights fp16 by default, scales fp32.
Each shape first checks the Triton mask against the reference bit for bit, then times every provider.

    python -P -m polysparse.bench.kernels.topk_mask [--out DIR] [--dtype float16] [--smoke]
"""

from __future__ import annotations

from typing import Any

import torch

from polysparse.bench.kernels import _common

NAME = "topk_mask"
SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336)]
SMOKE_SHAPES = [(8, 64), (5, 40)]
SPARSITY = 0.5
GOALS = {"unstructured": ("torch.sort", 5.0), "2:4": ("torch.topk", 2.0)}


def topk_groups_mask(weight: torch.Tensor, scale: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The vectorised PyTorch N:M path: ``topk`` of the ``n`` lowest scores in each group of ``m``."""
    rows, cols = weight.shape
    scores = (weight.float().abs() * scale.float().reshape(1, -1)).reshape(rows, cols // m, m)
    lowest = scores.topk(n, dim=2, largest=False).indices
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep.scatter_(2, lowest, False)
    return keep.reshape(rows, cols)


def _cases(tm, weight: torch.Tensor, scale: torch.Tensor, k: int) -> dict[str, tuple[dict, Any]]:
    """``op -> (providers, reference)``; every provider returns the keep-mask."""
    return {
        "unstructured": (
            {
                "torch.sort": lambda: tm.unstructured_mask_reference(weight, scale, k),
                "triton": lambda: tm.unstructured_mask(weight, scale, prune_per_row=k),
            },
            lambda: tm.unstructured_mask_reference(weight, scale, k),
        ),
        "2:4": (
            {
                "torch.topk": lambda: topk_groups_mask(weight, scale, 2, 4),
                "torch.sort": lambda: tm.nm_mask_reference(weight, scale, 2, 4),
                "triton": lambda: tm.nm_mask(weight, scale, n=2, m=4),
            },
            lambda: tm.nm_mask_reference(weight, scale, 2, 4),
        ),
    }


def run(shapes, dtype: torch.dtype, device: torch.device, time_ms) -> list[dict[str, Any]]:
    from polysparse.kernels import topk_mask as tm

    results = []
    for rows, cols in shapes:
        gen = torch.Generator(device=device).manual_seed(rows * 100_003 + cols)
        weight = torch.randn(rows, cols, device=device, generator=gen).to(dtype)
        scale = torch.rand(cols, device=device, generator=gen) + 0.1
        k = int(cols * SPARSITY)
        for op, (providers, reference) in _cases(tm, weight, scale, k).items():
            with _common.no_fallback(["unstructured_mask", "nm_mask"]):
                matches = bool(torch.equal(providers["triton"](), reference()))
                if not matches:
                    raise RuntimeError(f"{op} {rows}x{cols}: the Triton mask differs from the reference")
                ms = {name: time_ms(fn) for name, fn in providers.items()}
            baseline, goal = GOALS[op]
            results.append(
                {
                    "op": op,
                    "shape": [rows, cols],
                    "pruned_per_row": k if op == "unstructured" else cols // 2,
                    "ms": ms,
                    "baseline": baseline,
                    "speedup": ms[baseline] / ms["triton"],
                    "goal_speedup": goal,
                    "mask_matches_reference": matches,
                }
            )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    args = p.parse_args(argv)
    device = _common.resolve_device(args.device, args.smoke)
    dtype = getattr(torch, args.dtype)
    time_ms = _common.timer(device, fast=True, reps=2 if device.type == "cpu" else 10)
    results = run(SMOKE_SHAPES if args.smoke else SHAPES, dtype, device, time_ms)
    body = {"dtype": args.dtype, "scale_dtype": "float32", "sparsity": SPARSITY, "results": results}
    return _common.report(
        args, NAME, body, device, "triton.testing.do_bench median (L2 flushed, warm-up excluded)"
    )


if __name__ == "__main__":
    main()
