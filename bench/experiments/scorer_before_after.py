"""The task scorer of an earlier commit against this one, on the same real items of Gemma 3 270M: the largest
log-likelihood difference, whether any prediction changed, and CPU / wall seconds, each scorer run twice,
alternating, in one process on one thread.

Reports: ``bench/results/tasks/scorer-before-after.json`` (issue 23's length groups, output layer only at
scored positions and fused log-softmax, against eda9c64) and ``scorer-head-slabs.json`` (the output layer in
slabs of the vocabulary on the CPU, against b512fe5; measured beside the two study processes, load 2.6-3.0):

    git show b512fe5:sparsify/tasks/scoring.py > /tmp/scoring_before.py
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -P -m polysparse.bench.experiments.scorer_before_after \\
        /tmp/scoring_before.py --translation 48 --continuation 24 \\
        --head-products --out bench/results/tasks/scorer-head-slabs.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

TASKS = ("translation-choice:de->en:gettext", "continuation-choice:de:handbook")


def load_module(path: str, name: str = "scoring_before") -> ModuleType:
    """The scorer of another commit, from its file (``git show COMMIT:sparsify/tasks/scoring.py``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare(model, tokenizer, items, scorers: dict[str, Any], rounds: int = 2) -> dict[str, Any]:
    """Each scorer ``rounds`` times, alternating; the last scores compared item by item."""
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in scorers}
    scores = {}
    for _ in range(rounds):
        for label, score in scorers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            scores[label] = score(model, tokenizer, items)
            runs[label].append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
    pairs = list(zip(scores["before"], scores["after"]))
    return {
        "items": len(items),
        "max_abs_loglikelihood_difference": max(
            abs(a - b) for x, y in pairs for a, b in zip(x.loglikelihoods, y.loglikelihoods)
        ),
        "same_acc_predictions": all(x.prediction == y.prediction for x, y in pairs),
        "same_acc_norm_predictions": all(x.prediction_norm == y.prediction_norm for x, y in pairs),
        "runs": runs,
    }


def head_products(weight, rows=(16, 48, 120, 300), slabs=(1024, 2048, 4096), repeats: int = 3):
    """GFLOP/s of the output layer's product ``x @ weight.T`` for ``rows`` input rows: in one call, and
    slab by slab of ``weight``'s rows (:func:`polysparse.sparsify.tasks.scoring.slab_linear`) for each
    slab size."""
    import torch

    from polysparse.sparsify.tasks import scoring

    def rate(product, x) -> float:
        product(x)
        start = time.perf_counter()
        for _ in range(repeats):
            product(x)
        seconds = (time.perf_counter() - start) / repeats
        return round(2 * x.shape[0] * weight.shape[0] * weight.shape[1] / seconds / 1e9, 1)

    table = {}
    for count in rows:
        x = torch.randn(count, weight.shape[1], dtype=weight.dtype)
        table[str(count)] = {"one product": rate(lambda h: torch.nn.functional.linear(h, weight), x)}
        for size in slabs:
            with mock.patch.object(scoring, "HEAD_SLAB_ROWS", size):
                table[str(count)][f"slabs of {size}"] = rate(lambda h: scoring.slab_linear(h, weight), x)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="the earlier scoring.py (git show COMMIT:sparsify/tasks/scoring.py)")
    parser.add_argument("--translation", type=int, default=48, help="translation-choice items")
    parser.add_argument("--continuation", type=int, default=24, help="continuation-choice items")
    parser.add_argument(
        "--head-products",
        action="store_true",
        help="also time the output layer's product, whole and in slabs",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    args = parser.parse_args(argv)

    import torch

    from polysparse.bench.assets import resolve_model
    from polysparse.bench.report import write_json
    from polysparse.sparsify import strict_json
    from polysparse.sparsify.loading import load_causal_lm
    from polysparse.sparsify.tasks import build_items, score_items

    before = load_module(args.before)
    torch.set_num_threads(1)
    model, tokenizer = load_causal_lm(resolve_model("gemma-3-270m"))
    report: dict[str, Any] = {"load_average_before": os.getloadavg()}
    scorers = {"before": before.score_items, "after": score_items}
    for name, count in zip(TASKS, (args.translation, args.continuation)):
        items = build_items(name, seed=0, limit=count)
        report[name] = compare(model, tokenizer, items, scorers)
        print(strict_json.dumps({name: report[name]}, indent=1), flush=True)
    if args.head_products:
        head = model.get_output_embeddings().weight.detach()
        report["output_layer_gflops_one_thread"] = head_products(head)
        print(strict_json.dumps(report["output_layer_gflops_one_thread"], indent=1), flush=True)
    report["load_average_after"] = os.getloadavg()
    write_json(args.out, report)


if __name__ == "__main__":
    main()
