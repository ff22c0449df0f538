import math

import pytest
import torch

from polysparse.bench.experiments import llmc_layer_parity as parity


def _spd(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Hessian of correlated inputs, where SparseGPT's update matters."""
    x = torch.randn(4 * n, n, generator=generator) @ torch.randn(n, n, generator=generator)
    return x.t() @ x * (2.0 / (4 * n))


def _magnitude(weight: torch.Tensor, setting: str) -> torch.Tensor:
    """Magnitude pruning in the setting's pattern, no update: what SparseGPT must beat."""
    if setting == "2:4":
        groups = weight.abs().reshape(weight.shape[0], -1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(2, dim=2).indices, True)
        return weight * keep.reshape(weight.shape)
    threshold = weight.abs().flatten().kthvalue(weight.numel() // 2).values
    return torch.where(weight.abs() > threshold, weight, torch.zeros_like(weight))


def test_layer_objective_by_hand():
    original = torch.tensor([[1.0, 2.0]])
    pruned = torch.tensor([[0.0, 2.0]])
    hessian = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    # dW = [1, 0]: dW H dW^T = 2; W H W^T = 2 + 4 + 12 = 18
    assert parity.layer_objective(original, pruned, hessian) == pytest.approx(2.0 / 18.0)


def test_compare_scores_both_tools_on_the_same_layers(tmp_path):
    generator = torch.Generator().manual_seed(0)
    layers = {}
    for name, (rows, cols) in {"block.0.q": (12, 16), "block.0.down": (8, 32)}.items():
        layers[name] = {
            "weight": torch.randn(rows, cols, generator=generator),
            "hessian": _spd(cols, generator),
            "tokens": 4 * cols,
        }
    torch.save(
        {"layers": layers, "calib": "x", "nsamples": 1, "seqlen": 8, "seed": 0}, tmp_path / "layers.pt"
    )
    # the "other tool": polysparse's own solve on the first layer, plain magnitude pruning (no update) on the
    # second, which SparseGPT must beat on the objective
    other, seconds = {}, {}
    for name, entry in layers.items():
        other[name], seconds[name] = {}, {"2:4": 0.0, "0.5": 0.0}
        for setting in parity.SETTINGS:
            if name == "block.0.q":
                other[name][setting] = parity._polysparse_solve(entry["weight"], entry["hessian"], setting)
            else:
                other[name][setting] = _magnitude(entry["weight"], setting)
    torch.save({"layers": other, "seconds": seconds}, tmp_path / "llmc.pt")

    payload = parity.compare(tmp_path / "layers.pt", tmp_path / "llmc.pt", tmp_path / "out")

    by_key = {(r["layer"], r["setting"]): r for r in payload["rows"]}
    for setting in parity.SETTINGS:
        same = by_key[("block.0.q", setting)]
        assert same["mask_agreement"] == 1.0
        assert same["objective_polysparse"] == same["objective_llmcompressor"]
        assert same["max_weight_difference"] == 0.0
        magnitude = by_key[("block.0.down", setting)]
        assert magnitude["objective_polysparse"] < magnitude["objective_llmcompressor"]
        summary = payload["summary"][setting]
        assert summary["layers"] == 2 and summary["polysparse_lower_or_equal"] == 2
        assert summary["max_ratio"] == 1.0 and summary["min_ratio"] < 1.0
        assert summary["geomean_ratio"] == pytest.approx(math.sqrt(summary["min_ratio"]))
    text = (tmp_path / "out" / "layer-parity.md").read_text()
    assert "block.0.down" in text and "lower or equal on 2 of 2 layers" in text
