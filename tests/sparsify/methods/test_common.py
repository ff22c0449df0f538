"""What every method checks and keeps: finite inputs, divisible N:M layers, input and dtype untouched."""

import pytest
import torch

from helpers.layer_inputs import calibration, collect
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import prune_magnitude, prune_sparsegpt, prune_wanda
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError


def test_non_finite_weights_and_activations_are_refused():
    weight = torch.randn(4, 8)
    weight[1, 2] = float("nan")
    with pytest.raises(NonFiniteError):
        prune_magnitude(weight, None, PruneConfig(method="magnitude", sparsity=0.5))
    stats = LayerStatistics(8, want_norms=True)
    with pytest.raises(NonFiniteError):
        stats.add(torch.tensor([[float("inf")] * 8]))


def test_methods_do_not_modify_their_input_and_keep_dtype():
    weight = torch.randn(8, 16, dtype=torch.bfloat16)
    before = weight.clone()
    stats = collect(calibration(16, 5), 16, norms=True, hessian=True)
    for fn, method in (
        (prune_magnitude, "magnitude"),
        (prune_wanda, "wanda"),
        (prune_sparsegpt, "sparsegpt"),
    ):
        result = fn(weight, stats, PruneConfig(method=method, pattern="2:4"))
        assert result.weight.dtype == torch.bfloat16
        assert torch.equal(weight, before)


def test_nm_layer_with_indivisible_columns_is_refused():
    with pytest.raises(ValueError, match="not a multiple of M=4"):
        prune_magnitude(torch.randn(4, 10), None, PruneConfig(method="magnitude", pattern="2:4"))
