"""Pruning methods against the literal research-code oracles, mask invariants, and numerical edge cases."""

import pytest
import torch

from helpers.oracles import SparseGPTOracle, WandaNorms, reconstruction_error, wanda_oracle
from helpers.seeds import stable_seed
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import (
    HessianError,
    inverse_hessian_factor,
    prune_magnitude,
    prune_sparsegpt,
    prune_wanda,
)
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError

SHAPES = [(16, 32), (7, 24), (33, 64), (5, 136)]


def calibration(rows_in: int, seed: int, batches: int = 3, seq: int = 20, outliers: bool = True):
    """Activation batches (batch, seq, in) with a few large-magnitude features, as in real LLMs."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(rows_in)
    if outliers:
        scale[torch.randperm(rows_in, generator=g)[: max(1, rows_in // 10)]] = 8.0
    return [torch.randn(2, seq, rows_in, generator=g) * scale for _ in range(batches)]


def collect(inputs, in_features, norms=False, hessian=False):
    stats = LayerStatistics(in_features, want_norms=norms, want_hessian=hessian)
    for x in inputs:
        stats.add(x)
    return stats


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.7])
def test_wanda_unstructured_matches_oracle(shape, sparsity):
    seed = stable_seed(shape, sparsity, modulo=1000)
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    inputs = calibration(shape[1], seed)
    oracle_norms = WandaNorms(shape[1])
    for x in inputs:
        oracle_norms.add_batch(x)
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
    seed = stable_seed(shape, pattern, modulo=1000)
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    inputs = calibration(shape[1], seed)
    oracle_norms = WandaNorms(shape[1])
    for x in inputs:
        oracle_norms.add_batch(x)
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


@pytest.mark.parametrize("shape", [(12, 32), (9, 48), (24, 256)])
@pytest.mark.parametrize(
    "setting", [{"sparsity": 0.5}, {"sparsity": 0.6}, {"pattern": "2:4"}, {"pattern": "4:8"}]
)
@pytest.mark.parametrize("blocksize", [128, 16])
def test_sparsegpt_error_within_one_percent_of_oracle(shape, setting, blocksize):
    seed = stable_seed(shape, setting, blocksize, modulo=1000)
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    inputs = calibration(shape[1], seed, batches=4, seq=32)
    config = PruneConfig(method="sparsegpt", blocksize=blocksize, **setting)
    oracle = SparseGPTOracle(weight)
    for x in inputs:
        oracle.add_batch(x)
    n, m = (config.pattern.n, config.pattern.m) if config.pattern else (0, 0)
    expected = oracle.fasterprune(config.sparsity or 0, prunen=n, prunem=m, blocksize=blocksize)
    result = prune_sparsegpt(weight, collect(inputs, shape[1], hessian=True), config)
    x = torch.cat([i.reshape(-1, shape[1]) for i in inputs])
    ours, theirs = reconstruction_error(weight, result.weight, x), reconstruction_error(weight, expected, x)
    assert ours <= theirs * 1.01, (ours, theirs)
    assert result.info["reconstruction_error"] == pytest.approx(ours, rel=1e-3)
    if config.pattern is not None:
        assert torch.equal(result.keep, expected != 0)
        assert ((~result.keep).reshape(shape[0], -1, m).sum(dim=2) == n).all()
    else:
        assert (~result.keep).sum().item() == pytest.approx(
            config.sparsity * weight.numel(), abs=shape[1] // blocksize + 1
        )


def test_sparsegpt_beats_wanda_on_reconstruction():
    """With correlated input features (as in real models) the OBS update recovers much of the error."""
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(32, 64, generator=g)
    mixing = torch.randn(64, 64, generator=g) / 8 + torch.eye(64)
    inputs = [x @ mixing for x in calibration(64, 1, batches=4, seq=32)]
    x = torch.cat([i.reshape(-1, 64) for i in inputs])
    stats = collect(inputs, 64, norms=True, hessian=True)
    wanda = prune_wanda(weight, stats, PruneConfig(sparsity=0.5))
    sgpt = prune_sparsegpt(weight, stats, PruneConfig(method="sparsegpt", sparsity=0.5))
    assert reconstruction_error(weight, sgpt.weight, x) < 0.7 * reconstruction_error(weight, wanda.weight, x)


def test_sparsegpt_dead_inputs_are_zeroed():
    inputs = calibration(16, 2)
    for x in inputs:
        x[..., 3] = 0.0
    weight = torch.randn(8, 16)
    result = prune_sparsegpt(
        weight, collect(inputs, 16, hessian=True), PruneConfig(method="sparsegpt", sparsity=0.5)
    )
    assert (result.weight[:, 3] == 0).all()
    assert result.info["dead_inputs"] == 1


def test_damping_is_raised_and_reported_when_cholesky_fails():
    hessian = torch.diag(torch.tensor([1.0, 1.0, -0.05]))
    factor = inverse_hessian_factor(hessian, 0.01)
    assert factor.percdamp == pytest.approx(0.1) and not factor.diagonal
    torch.testing.assert_close(
        factor.hinv.t() @ factor.hinv, torch.linalg.inv(hessian + 0.1 * (1.95 / 3) * torch.eye(3))
    )


def test_indefinite_hessian_at_every_damping_falls_back_to_its_diagonal():
    hessian = torch.tensor([[1.0, 1e6], [1e6, 1.0]])  # eigenvalues 1 +- 1e6: no damping up to 1e4 helps
    factor = inverse_hessian_factor(hessian, 0.01)
    assert factor.diagonal
    torch.testing.assert_close(factor.hinv.t() @ factor.hinv, torch.diag(torch.tensor([1 / 1.01, 1 / 1.01])))
    stats = LayerStatistics(2, want_hessian=True)
    stats.xtx, stats.ntokens = hessian / 2, 1
    result = prune_sparsegpt(
        torch.tensor([[1.0, -3.0], [2.0, 0.5]]), stats, PruneConfig(method="sparsegpt", sparsity=0.5)
    )
    assert result.info["diagonal_hessian"] is True and result.sparsity == 0.5


def test_hessian_without_a_positive_diagonal_raises_a_clear_error():
    hessian = torch.diag(torch.tensor([1.0, -1e6]))
    with pytest.raises(HessianError, match="not positive-definite"):
        inverse_hessian_factor(hessian, 0.01)


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
