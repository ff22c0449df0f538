"""SparseGPT whole-layer solve benchmark: the Triton block kernel against the PyTorch reference loop.

Both providers get the same fp32 weight and ``Hinv`` (upper Cholesky factor of the damped inverse Hessian of
random calibration inputs ``X``, 2 x in_features samples) and prune 50% unstructured and 2:4, blocks of 128.
Reported per shape and pattern: milliseconds of each provider (warm-up excluded, CUDA events around each
call), the speedup (goal on an H100: >= 5x the reference loop) and the relative reconstruction error
``||W X - W' X||^2 / ||W X||^2`` of each (goal: the same error, within 1%); 2:4 masks must be identical.

Shapes (out x in): Llama-2-7B's 4096x4096, 11008x4096, 4096x11008 and Gemma 3 270M's q (640->1024),
k/v (640->256), o (1024->640), gate/up (640->2048) and down (2048->640).

    python -P -m polysparse.bench.kernels.sparsegpt_solve [--out DIR] [--reps 3] [--smoke]
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from polysparse.bench.kernels import _common

NAME = "sparsegpt_solve"
SHAPES = {
    "llama2-7b 4096->4096": (4096, 4096),
    "llama2-7b 4096->11008": (11008, 4096),
    "llama2-7b 11008->4096": (4096, 11008),
    "gemma3-270m q 640->1024": (1024, 640),
    "gemma3-270m k/v 640->256": (256, 640),
    "gemma3-270m o 1024->640": (640, 1024),
    "gemma3-270m gate/up 640->2048": (2048, 640),
    "gemma3-270m down 2048->640": (640, 2048),
}
SMOKE_SHAPES = {"smoke 32->8": (8, 32), "smoke 48->5": (5, 48)}
PATTERNS = {"unstructured 50%": {"sparsity": 0.5}, "2:4": {"n": 2, "m": 4}}
BLOCKSIZE = 128
SMOKE_BLOCKSIZE = 16
GOAL_SPEEDUP = 5.0
ERROR_TOLERANCE = 0.01


def problem(rows: int, cols: int, device: torch.device, seed: int):
    """Random weight, calibration inputs ``X`` (cols x samples) and ``Hinv``, built as the front end does."""
    gen = torch.Generator(device=device).manual_seed(seed)
    samples = 2 * cols
    weight = torch.randn(rows, cols, device=device, generator=gen)
    X = torch.randn(cols, samples, device=device, generator=gen)
    H = (2 / samples) * (X @ X.T)
    H.diagonal().add_(0.01 * H.diagonal().mean())
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    return weight, X, hinv


def relative_error(weight: torch.Tensor, new_weight: torch.Tensor, X: torch.Tensor) -> float:
    return (((weight - new_weight) @ X).pow(2).sum() / (weight @ X).pow(2).sum()).item()


def run(shapes: dict, blocksize: int, device: torch.device, time_ms) -> list[dict[str, Any]]:
    from polysparse.kernels import sparsegpt as sg

    results = []
    for label, (rows, cols) in shapes.items():
        weight, X, hinv = problem(rows, cols, device, seed=rows * 100_003 + cols)
        for pattern, kwargs in PATTERNS.items():
            reference = partial(sg.sparsegpt_solve_reference, weight, hinv, blocksize=blocksize, **kwargs)
            triton_solve = partial(sg.sparsegpt_solve, weight, hinv, blocksize=blocksize, **kwargs)
            with _common.no_fallback(["sparsegpt_solve"]):
                W_ref, keep_ref = reference()
                W_new, keep = triton_solve()
                err_ref, err_new = relative_error(weight, W_ref, X), relative_error(weight, W_new, X)
                masks_equal = bool(torch.equal(keep, keep_ref))
                del W_ref, keep_ref, W_new, keep
                ms = {"pytorch loop": time_ms(reference), "triton": time_ms(triton_solve)}
            results.append(
                {
                    "op": pattern,
                    "layer": label,
                    "shape": [rows, cols],
                    "blocksize": blocksize,
                    "ms": ms,
                    "baseline": "pytorch loop",
                    "speedup": ms["pytorch loop"] / ms["triton"],
                    "goal_speedup": GOAL_SPEEDUP,
                    "relative_error": {"pytorch loop": err_ref, "triton": err_new},
                    "error_ratio": err_new / err_ref,
                    "masks_equal": masks_equal,
                }
            )
            if "n" in kwargs and not masks_equal:
                raise RuntimeError(f"{pattern} {label}: the Triton masks differ from the reference loop's")
            if abs(err_new / err_ref - 1) > ERROR_TOLERANCE:
                raise RuntimeError(f"{pattern} {label}: error {err_new:.6g} vs reference {err_ref:.6g}")
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="timed calls per provider after one warm-up")
    args = p.parse_args(argv)
    device = _common.resolve_device(args.device, args.smoke)
    # The reference loop takes seconds per call on the big shapes: CUDA events around whole calls.
    time_ms = _common.timer(device, fast=False, reps=args.reps)
    blocksize = SMOKE_BLOCKSIZE if args.smoke else BLOCKSIZE
    results = run(SMOKE_SHAPES if args.smoke else SHAPES, blocksize, device, time_ms)
    body = {"weight_dtype": "float32", "results": results}
    return _common.report(
        args, NAME, body, device, f"median of {args.reps} calls after one warm-up, CUDA events"
    )


if __name__ == "__main__":
    main()
