"""Benchmarks of the CPU prune path's hot functions on Gemma 3 270M's layer shapes (random data).

Gemma 3 270M: hidden 640, attention 4 x 256 = 1024 (q, o), MLP 2048 (gate, up, down). Each benchmark runs
one layer's work as the driver does it: the activation statistics of one 4 x 512-token batch, Wanda's scores
and mask, SparseGPT's solve (inverse Hessian factor and blocked updates) and the ADMM update after a mask.

A report, not a pass/fail timing: ``make benchmark`` saves the timings under ``bench/results/benchmarks/``
and compares them with the last saved run (see its README). In ``make test`` the project's pytest
configuration disables timing (``--benchmark-disable``) and each benchmark runs its function once, checking
what it returned.
"""

import pytest
import torch

from polysparse.kernels import fallback_counts
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import admm_update, prune_sparsegpt, prune_wanda
from polysparse.sparsify.stats import LayerStatistics

LAYERS = {  # (out_features, in_features) of Gemma 3 270M's linear layers
    "q_proj": (1024, 640),
    "o_proj": (640, 1024),
    "up_proj": (2048, 640),
    "down_proj": (640, 2048),
}
SETTINGS = {"50%": {"sparsity": 0.5}, "2:4": {"pattern": "2:4"}}
BATCH, TOKENS = 4, 512


def _inputs(in_features: int, seed: int = 0) -> torch.Tensor:
    """One calibration batch with a few large-magnitude features, as real activations have."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(in_features)
    scale[torch.randperm(in_features, generator=g)[: in_features // 50]] = 20.0
    return torch.randn(BATCH, TOKENS, in_features, generator=g) * scale


def _layer(name: str, seed: int = 0) -> tuple[torch.Tensor, LayerStatistics]:
    out_features, in_features = LAYERS[name]
    weight = torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(seed + 1)) * 0.02
    stats = LayerStatistics(in_features, want_norms=True, want_hessian=True)
    stats.add(_inputs(in_features, seed))
    return weight, stats


def _check_mask(keep: torch.Tensor, setting: dict, per_row: bool = True) -> None:
    """2:4 in every group; unstructured, the sparsity in every row (Wanda) or over the layer (SparseGPT
    compares scores over blocks of 128 columns, not per row)."""
    rows, cols = keep.shape
    if "pattern" in setting:
        assert (keep.reshape(rows, cols // 4, 4).sum(-1) == 2).all()
    elif per_row:
        assert (keep.sum(1) == cols - int(setting["sparsity"] * cols)).all()
    else:
        assert abs(1 - keep.float().mean().item() - setting["sparsity"]) < 1e-3


@pytest.mark.parametrize("in_features", [640, 1024, 2048])
@pytest.mark.parametrize("hessian", [False, True], ids=["norms", "norms+hessian"])
def test_activation_statistics(benchmark, in_features, hessian):
    x = _inputs(in_features)
    mask = torch.ones(BATCH, TOKENS, dtype=torch.bool)
    mask[-1, TOKENS // 2 :] = False  # padding, as the last window of a set has

    def accumulate():
        stats = LayerStatistics(in_features, want_norms=True, want_hessian=hessian)
        stats.add(x, mask)
        return stats

    stats = benchmark(accumulate)
    assert stats.ntokens == int(mask.sum())
    assert (stats.xtx is not None) == hessian


@pytest.mark.parametrize("setting", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("layer", LAYERS)
def test_wanda(benchmark, layer, setting):
    weight, stats = _layer(layer)
    result = benchmark(prune_wanda, weight, stats, PruneConfig(**setting))
    _check_mask(result.keep, setting)
    op = "nm_mask" if "pattern" in setting else "unstructured_mask"
    assert any(name == op for name, _ in fallback_counts)  # the CPU path, not Triton's interpreter


@pytest.mark.parametrize("setting", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("layer", ["q_proj", "down_proj"])
def test_sparsegpt(benchmark, layer, setting):
    weight, stats = _layer(layer)
    config = PruneConfig(method="sparsegpt", **setting)
    result = benchmark.pedantic(prune_sparsegpt, (weight, stats, config), rounds=3, warmup_rounds=1)
    _check_mask(result.keep, setting, per_row=False)
    assert (result.weight[~result.keep] == 0).all()
    assert any(op == "sparsegpt_solve" for op, _ in fallback_counts)  # the CPU path, not Triton's interpreter


@pytest.mark.parametrize("layer", ["q_proj", "down_proj"])
def test_admm_update(benchmark, layer):
    weight, stats = _layer(layer)
    pruned = prune_wanda(weight, stats, PruneConfig(pattern="2:4"))
    hessian = stats.hessian()
    result = benchmark.pedantic(
        admm_update, (weight, pruned.keep, hessian), {"start": pruned.weight}, rounds=3, warmup_rounds=1
    )
    assert (result.weight[~pruned.keep] == 0).all()
    assert result.error_after < result.error_before
