"""ADMM weight update: one eigendecomposition per layer against a Cholesky inverse per iteration.

``admm_update`` changes its penalty ``rho`` every iteration, so the old solve (``solver="cholesky"``)
factorised and inverted the (in x in) scaled Hessian plus ``rho I`` 20 times per layer; the new one
(``solver="eigen"``) decomposes it once and applies ``(Hn + rho I)^-1`` with matrix products. Both compute
the same iterates (up to float32 rounding, reported per layer as the largest weight difference relative to
the largest weight, and the relative difference of the layer error they reach).

A third column times a schedule that is *not* the same computation, for scale only: ``rho`` held for
``--hold`` iterations at a time so that one Cholesky inverse serves several iterations (Boža's code updates
``rho`` in steps); it reaches a different layer error (reported), so it is not a drop-in replacement.

Layers: Gemma 3 270M's shapes (q 1024x640, k and v 256x640, o 640x1024, gate and up 2048x640, down
640x2048), 2:4 masks by magnitude, Hessians from correlated random inputs with outlier features. Old and
new alternate ``--repeats`` times on one thread and the medians are reported, so both see the same load.

    OMP_NUM_THREADS=1 python -P -m polysparse.bench.experiments.admm_speed \\
        --out bench/results/recovery/gemma-3-270m
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.sparsify.methods.admm import _inverse, admm_update, damped_hessian

# (name, out, in)
GEMMA_LAYERS = [
    ("q_proj", 1024, 640),
    ("k_proj", 256, 640),
    ("v_proj", 256, 640),
    ("o_proj", 640, 1024),
    ("gate_proj", 2048, 640),
    ("up_proj", 2048, 640),
    ("down_proj", 640, 2048),
]


def held_rho_update(weight, keep, hessian, *, iterations, hold, rho_start=0.1, rho_end=10.0, percdamp=0.01):
    """ADMM with ``rho`` changed only every ``hold`` iterations (one Cholesky inverse each): the alternative.

    Same geometric range as ``admm_update``, in ``ceil(iterations / hold)`` steps. Returns the weight.
    """
    H = damped_hessian(hessian, percdamp)
    scale = torch.diagonal(H).sqrt()
    Hn = H / scale[:, None] / scale[None, :]
    mask = keep.float()
    target = (weight * scale) @ Hn
    z, u = weight * scale * mask, torch.zeros_like(weight)
    eye = torch.eye(Hn.shape[0])
    changes = max(1, -(-iterations // hold) - 1)
    growth = (rho_end / rho_start) ** (1.0 / changes)
    rho, inverse = rho_start, None
    for step in range(iterations):
        if step % hold == 0:
            if step:
                rho *= growth
                u = u / growth
            inverse = _inverse(Hn + rho * eye)
        v = (target + rho * (z - u)) @ inverse
        z = (v + u) * mask
        u = u + v - z
    return z / scale


def _layer(rows: int, cols: int, g: torch.Generator):
    mixing = torch.eye(cols) + 0.1 * torch.randn(cols, cols, generator=g)
    x = torch.randn(4 * cols, cols, generator=g) @ mixing
    x[:, torch.randperm(cols, generator=g)[: cols // 100 + 1]] *= 10.0  # outlier features
    hessian = 2 / x.shape[0] * x.T @ x
    weight = torch.randn(rows, cols, generator=g)
    groups = weight.abs().reshape(rows, -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(2, dim=2).indices, True)
    return weight, keep.reshape(rows, cols), hessian


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m polysparse.bench.experiments.admm_speed", description=__doc__
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--hold", type=int, default=5, help="iterations per rho in the third column")
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    layers = [(name, *_layer(rows, cols, g)) for name, rows, cols in GEMMA_LAYERS]
    load_before = os.getloadavg()[0]
    records, rows = [], []
    totals = {"cholesky": 0.0, "eigen": 0.0, "held": 0.0}
    for name, weight, keep, hessian in layers:
        problem = {"weight": weight, "keep": keep, "hessian": hessian, "iterations": args.iterations}
        run = {
            "cholesky": partial(admm_update, **problem, solver="cholesky"),
            "eigen": partial(admm_update, **problem, solver="eigen"),
            "held": partial(held_rho_update, **problem, hold=args.hold),
        }
        run["eigen"]()  # warm-up (allocator, LAPACK workspaces)
        times: dict[str, list[float]] = {key: [] for key in run}
        results = {}
        for _ in range(args.repeats):
            for key, fn in run.items():
                seconds, results[key] = _timed(fn)
                times[key].append(seconds)
        medians = {key: statistics.median(values) for key, values in times.items()}
        for key in totals:
            totals[key] += medians[key]
        old, new = results["cholesky"], results["eigen"]
        weight_difference = ((new.weight - old.weight).abs().max() / old.weight.abs().max()).item()
        error_difference = abs(new.error_after - old.error_after) / old.error_after
        held_error = ((results["held"] - weight) @ hessian * (results["held"] - weight)).sum().item()
        record = {
            "layer": name,
            "shape": list(weight.shape),
            "seconds": medians,
            "times": times,
            "speed_up": medians["cholesky"] / medians["eigen"],
            "max_weight_difference_relative": weight_difference,
            "error_after": {"cholesky": old.error_after, "eigen": new.error_after, "held": held_error},
            "error_after_relative_difference": error_difference,
        }
        records.append(record)
        rows.append(
            [
                f"{name} {weight.shape[0]}x{weight.shape[1]}",
                f"{medians['cholesky']:.3f}",
                f"{medians['eigen']:.3f}",
                f"{record['speed_up']:.2f}x",
                f"{weight_difference:.1e}",
                f"{error_difference:.1e}",
                f"{medians['held']:.3f}",
                f"{held_error / old.error_after:.4f}",
            ]
        )
        print(rows[-1], flush=True)
    rows.append(
        [
            "**block (sum)**",
            f"{totals['cholesky']:.3f}",
            f"{totals['eigen']:.3f}",
            f"{totals['cholesky'] / totals['eigen']:.2f}x",
            "",
            "",
            f"{totals['held']:.3f}",
            "",
        ]
    )
    load_after = os.getloadavg()[0]
    command = "OMP_NUM_THREADS=1 python -P -m polysparse.bench.experiments.admm_speed " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    payload = {
        "command": command,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "hold": args.hold,
        "torch_threads": torch.get_num_threads(),
        "layers": records,
        "block_seconds": totals,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }
    out = Path(args.out)  # write_json makes the folder
    write_json(out / "admm_speed.json", payload)
    note = (
        f"ADMM update of one Gemma 3 270M block's layers, {args.iterations} iterations, 2:4 magnitude masks, "
        f"synthetic Hessians; median of {args.repeats} alternating runs on {torch.get_num_threads()} torch "
        f"thread(s), load average {load_before:.1f} before, {load_after:.1f} after.\n\n"
        f"`{command}`\n\n"
        "Old: Cholesky factor and inverse of the scaled Hessian + rho I every iteration. New: one "
        "eigendecomposition per layer, products per iteration (the same iterates; *weight diff* = largest "
        "|new - old| / largest |old|, *error diff* = relative difference of the layer error reached). "
        f"*Held rho*: rho changed every {args.hold} iterations, one Cholesky inverse each: a different "
        "schedule, timed for scale; *held error* = its layer error / the old one's.\n\n"
    )
    headers = ["layer", "old s", "new s", "speed-up", "weight diff", "error diff", "held rho s", "held error"]
    (out / "admm_speed.md").write_text(note + markdown_table(headers, rows) + "\n", encoding="utf-8")
    print(note + markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
