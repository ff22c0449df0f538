"""Where SparseGPT's CPU time goes, part by part, before and after the speed changes of issue 11.

Times, on Gemma 3 270M's layer shapes (q 1024x640, k and v 256x640, o 640x1024, gate and up 2048x640,
down 640x2048) and one 512-token calibration window per batch:

* the statistics of one block for one batch: every layer computing ``X^T X`` of its own input (before)
  against layers fed the same tensor sharing it (after: q/k/v and gate/up);
* the blocked solve of every layer of one block: the reference loop (before) against the CPU fast path
  (after), for 50% unstructured and 2:4.

Before and after alternate, ``--repeats`` times each, and the medians are reported, so both see the same
machine load; the ratios are the result, the seconds depend on the load (recorded).

    python -P -m polysparse.bench.experiments.sparsegpt_speed --out bench/results/sparsegpt_speed
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.kernels.sparsegpt import sparsegpt_solve_reference, sparsegpt_solve_torch
from polysparse.sparsify.methods.sparsegpt import inverse_hessian_factor
from polysparse.sparsify.stats import LayerStatistics

# (name, out, in, which input it reads)
GEMMA_LAYERS = [
    ("q_proj", 1024, 640, "attn_in"),
    ("k_proj", 256, 640, "attn_in"),
    ("v_proj", 256, 640, "attn_in"),
    ("o_proj", 640, 1024, "attn_out"),
    ("gate_proj", 2048, 640, "mlp_in"),
    ("up_proj", 2048, 640, "mlp_in"),
    ("down_proj", 640, 2048, "mlp_act"),
]


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m polysparse.bench.experiments.sparsegpt_speed")
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=512)
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    widths = {"attn_in": 640, "attn_out": 1024, "mlp_in": 640, "mlp_act": 2048}
    inputs = {k: torch.randn(1, args.tokens, w, generator=g) for k, w in widths.items()}
    load_before = os.getloadavg()[0]

    def stats_pass(shared: bool) -> None:
        cache: dict | None = {} if shared else None
        for _, _, width, source in GEMMA_LAYERS:
            LayerStatistics(width, want_hessian=True).add(inputs[source], shared=cache)

    problems = []
    for name, rows, cols, _ in GEMMA_LAYERS:
        x = torch.randn(4 * cols, cols, generator=g) @ (
            torch.eye(cols) + 0.1 * torch.randn(cols, cols, generator=g)
        )
        factor = inverse_hessian_factor(2 / x.shape[0] * x.T @ x, 0.01)
        problems.append((name, torch.randn(rows, cols, generator=g), factor.hinv))

    def solve(fn, pattern) -> None:
        for _, weight, hinv in problems:
            fn(weight, hinv, blocksize=128, **pattern)

    cases = {
        "statistics of one block, one batch (X^T X per layer)": (
            lambda: stats_pass(False),
            lambda: stats_pass(True),
        ),
        "solve of one block, 50% unstructured": (
            lambda: solve(sparsegpt_solve_reference, {"sparsity": 0.5}),
            lambda: solve(sparsegpt_solve_torch, {"sparsity": 0.5}),
        ),
        "solve of one block, 2:4": (
            lambda: solve(sparsegpt_solve_reference, {"n": 2, "m": 4}),
            lambda: solve(sparsegpt_solve_torch, {"n": 2, "m": 4}),
        ),
    }
    rows, records = [], []
    for label, (before, after) in cases.items():
        times: dict[str, list[float]] = {"before": [], "after": []}
        after()  # warm-up (allocator, thread pool)
        for _ in range(args.repeats):
            times["before"].append(_timed(before))
            times["after"].append(_timed(after))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        records.append({"part": label, "before_s": b, "after_s": a, "times": times})
        rows.append([label, f"{b:.3f}", f"{a:.3f}", f"{b / a:.2f}x"])
    load_after = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "parts": records,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }
    write_json(out / "parts.json", payload)
    note = (
        f"Median of {args.repeats} alternating runs, {args.tokens}-token batches, Gemma 3 270M layer shapes, "
        f"torch threads {torch.get_num_threads()}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after.\n\n"
    )
    table = markdown_table(["part", "before (s)", "after (s)", "speed-up"], rows)
    (out / "parts.md").write_text(note + table + "\n", encoding="utf-8")
    print(note + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
