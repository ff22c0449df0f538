"""prune_sparsegpt against the research-code oracle, dead inputs, damping and Hessians that fail Cholesky."""

import pytest
import torch

from helpers.layer_inputs import calibration, collect
from helpers.oracles import SparseGPTOracle, reconstruction_error
from helpers.seeds import stable_seed
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import HessianError, inverse_hessian_factor, prune_sparsegpt, prune_wanda
from polysparse.sparsify.stats import LayerStatistics


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
