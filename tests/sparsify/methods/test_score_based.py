"""prune_magnitude and prune_wanda against the research-code oracle: counts per row, N:M groups, ties."""

import pytest
import torch

from helpers.layer_inputs import SHAPES, calibration, collect
from helpers.oracles import WandaNorms, wanda_oracle
from helpers.seeds import stable_seed
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import prune_magnitude, prune_wanda


def wanda_problem(shape, setting):
    """A weight, calibration inputs and the Wanda code's own norms of them, seeded by the case."""
    seed = stable_seed(shape, setting, modulo=1000)
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    inputs = calibration(shape[1], seed)
    oracle_norms = WandaNorms(shape[1])
    for x in inputs:
        oracle_norms.add_batch(x)
    return weight, inputs, oracle_norms


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.7])
def test_wanda_unstructured_matches_oracle(shape, sparsity):
    weight, inputs, oracle_norms = wanda_problem(shape, sparsity)
    expected_w, expected_prune = wanda_oracle(weight, oracle_norms.scaler_row, sparsity_ratio=sparsity)
    result = prune_wanda(weight, collect(inputs, shape[1], norms=True), PruneConfig(sparsity=sparsity))
    assert torch.equal(~result.keep, expected_prune)
    torch.testing.assert_close(result.weight, expected_w, rtol=0, atol=0)
    assert ((~result.keep).sum(dim=1) == int(sparsity * shape[1])).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4", "3:8"])
def test_wanda_nm_matches_oracle(shape, pattern):
    n, m = map(int, pattern.split(":"))
    if shape[1] % m:
        pytest.skip("in_features not a multiple of M")
    weight, inputs, oracle_norms = wanda_problem(shape, pattern)
    _, expected_prune = wanda_oracle(weight, oracle_norms.scaler_row, prune_n=n, prune_m=m)
    result = prune_wanda(weight, collect(inputs, shape[1], norms=True), PruneConfig(pattern=pattern))
    assert torch.equal(~result.keep, expected_prune)
    groups = (~result.keep).reshape(shape[0], -1, m).sum(dim=2)
    assert (groups == n).all()
    assert (result.weight[~result.keep] == 0).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("setting", [{"sparsity": 0.5}, {"sparsity": 0.3}, {"pattern": "2:4"}])
def test_magnitude_matches_oracle(shape, setting):
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    config = PruneConfig(method="magnitude", **setting)
    if config.pattern is not None and shape[1] % config.pattern.m:
        pytest.skip("in_features not a multiple of M")
    n, m = (config.pattern.n, config.pattern.m) if config.pattern else (0, 0)
    _, expected_prune = wanda_oracle(
        weight, None, sparsity_ratio=config.sparsity or 0, prune_n=n, prune_m=m, magnitude=True
    )
    result = prune_magnitude(weight, None, config)
    assert torch.equal(~result.keep, expected_prune)


def test_wanda_differs_from_magnitude_when_activations_matter():
    """Guard against a Wanda that ignores its statistics: outlier features change the mask."""
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    inputs = calibration(32, 0)
    wanda = prune_wanda(weight, collect(inputs, 32, norms=True), PruneConfig(sparsity=0.5))
    magnitude = prune_magnitude(weight, None, PruneConfig(method="magnitude", sparsity=0.5))
    assert not torch.equal(wanda.keep, magnitude.keep)


def test_ties_follow_a_stable_sort():
    weight = torch.ones(3, 8)
    result = prune_magnitude(weight, None, PruneConfig(method="magnitude", sparsity=0.5))
    assert torch.equal(result.keep, torch.tensor([[False] * 4 + [True] * 4] * 3))
    result = prune_magnitude(weight, None, PruneConfig(method="magnitude", pattern="2:4"))
    assert torch.equal(result.keep, torch.tensor([[False, False, True, True] * 2] * 3))
