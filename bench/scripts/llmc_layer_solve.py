"""llm-compressor's SparseGPT solve on the layers that
``python -P -m polysparse.bench.experiments.llmc_layer_parity dump`` wrote.

    /work/venv-llmc/bin/python bench/scripts/llmc_layer_solve.py --layers layers.pt --out llmc.pt

For each layer and each equal setting (2:4, 50% unstructured; blocks of 128, damping 0.01, as
``llmc_oneshot.py`` configures ``SparseGPTModifier``) it calls llm-compressor's own ``sparsify_weight`` on a
``torch.nn.Linear`` holding the weight, with the dumped Hessian, and stores the pruned weight and the time.
Imports nothing from polysparse (llm-compressor pins its own transformers, so it has its own environment).
"""

from __future__ import annotations

import argparse
import time
from importlib.metadata import version

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from llmcompressor.modifiers.pruning.sparsegpt.sgpt_sparsify import sparsify_weight

    dumped = torch.load(args.layers)
    pruned: dict[str, dict[str, torch.Tensor]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for name, entry in dumped["layers"].items():
        weight = entry["weight"]
        module = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            module.weight.copy_(weight)
        pruned[name], seconds[name] = {}, {}
        for setting, (prune_n, prune_m) in {"2:4": (2, 4), "0.5": (0, 0)}.items():
            started = time.perf_counter()
            _, new_weight = sparsify_weight(
                module=module,
                hessians_dict={module: entry["hessian"].clone()},
                sparsity=0.5,
                prune_n=prune_n,
                prune_m=prune_m,
                block_size=128,
                dampening_frac=0.01,
                preserve_sparsity_mask=False,
            )
            seconds[name][setting] = time.perf_counter() - started
            pruned[name][setting] = new_weight.detach().float().clone()
        print(name, seconds[name])
    versions = {p: version(p) for p in ("llmcompressor", "torch", "transformers")}
    torch.save({"layers": pruned, "seconds": seconds, "versions": versions}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
