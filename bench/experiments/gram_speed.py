"""``x^T x`` for SparseGPT's Hessian on the CPU: one product against :func:`~polysparse.sparsify.stats.gram`'s
panels, on Gemma 3 270M's layer input widths and one calibration window per call (what the hooks see).

    OMP_NUM_THREADS=1 python -P -m polysparse.bench.experiments.gram_speed --out bench/results/sparsegpt_speed

Writes ``gram.{json,md}``: median milliseconds per call over ``--repeats`` calls, and whether each panel's
result is bitwise equal to the single product.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from polysparse.bench.kernels._common import wall_ms
from polysparse.bench.report import environment, markdown_table, write_json
from polysparse.sparsify.stats import gram

WIDTHS = (640, 1024, 2048)
"""Gemma 3 270M's input widths: hidden size (q/k/v, gate/up), attention output (o_proj), MLP (down_proj)."""
PANELS = (128, 256, 512)


def measure(tokens: int, repeats: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for width in WIDTHS:
        x = torch.randn(tokens, width, generator=generator)
        full = x.t() @ x
        row = {"in_features": width, "tokens": tokens, "full_ms": wall_ms(lambda x=x: x.t() @ x, repeats)}
        for panel in PANELS:
            row[f"panel_{panel}_ms"] = wall_ms(lambda x=x, panel=panel: gram(x, panel), repeats)
            row[f"panel_{panel}_bitwise_equal"] = bool(torch.equal(gram(x, panel), full))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m polysparse.bench.experiments.gram_speed")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default="bench/results/sparsegpt_speed")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = measure(args.tokens, args.repeats)
    load_after = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "rows": rows,
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "environment": environment(),
    }
    write_json(out / "gram.json", payload)
    panels = [f"panels of {p} ms (bitwise equal)" for p in PANELS]
    headers = ["in_features", "x^T x ms", *panels, "best speed-up"]
    body = []
    for row in rows:
        best = min(row[f"panel_{p}_ms"] for p in PANELS)
        cells = [row["in_features"], f"{row['full_ms']:.2f}"]
        cells += [f"{row[f'panel_{p}_ms']:.2f} ({row[f'panel_{p}_bitwise_equal']})" for p in PANELS]
        cells.append(f"{row['full_ms'] / best:.2f}x")
        body.append(cells)
    note = (
        f"Median ms per call over {args.repeats} calls, x of {args.tokens} tokens (one calibration window), "
        f"float32, {torch.get_num_threads()} torch thread(s), load average {load_before:.1f} / "
        f"{load_after:.1f}."
    )
    (out / "gram.md").write_text(note + "\n\n" + markdown_table(headers, body) + "\n", encoding="utf-8")
    print((out / "gram.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
