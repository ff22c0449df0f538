"""The ADMM weight update against a per-row least-squares oracle, and its mask invariants."""

import pytest
import torch

from helpers.seeds import stable_seed
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods import prune_magnitude, prune_sparsegpt, prune_wanda
from polysparse.sparsify.methods.admm import admm_update, damped_hessian, layer_error
from polysparse.sparsify.stats import LayerStatistics


def activations(in_features: int, seed: int, tokens: int = 96) -> torch.Tensor:
    """Correlated inputs with a few outlier features, like a real layer's (and a dead one)."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(in_features, in_features, generator=g) / in_features**0.5 + torch.eye(in_features)
    x = torch.randn(tokens, in_features, generator=g) @ mixing
    x[:, torch.randperm(in_features, generator=g)[:2]] *= 10.0
    x[:, 3] = 0.0  # an input that never fires
    return x


def lstsq_oracle(weight: torch.Tensor, keep: torch.Tensor, hessian: torch.Tensor, percdamp: float):
    """Each row's restricted least squares, solved on its own with ``torch.linalg.lstsq`` in float64.

    ``(w - w0)^T (H + lambda I) (w - w0)`` over the kept inputs equals ``||A (w - w0)||^2`` with
    ``A = L^T`` for ``H + lambda I = L L^T``; restricted to the kept columns ``S`` that is the ordinary least
    squares ``A[:, S] w_S ~ A w0``.
    """
    A = torch.linalg.cholesky(damped_hessian(hessian, percdamp).double()).T
    out = torch.zeros_like(weight, dtype=torch.float64)
    for r in range(weight.shape[0]):
        kept = keep[r].nonzero().squeeze(1)
        rhs = A @ weight[r].double()
        out[r, kept] = torch.linalg.lstsq(A[:, kept], rhs.unsqueeze(1)).solution.squeeze(1)
    return out


@pytest.mark.parametrize("shape", [(12, 32), (7, 40), (20, 64)])
@pytest.mark.parametrize("percdamp", [0.01, 0.1])
def test_admm_matches_lstsq_oracle(shape, percdamp):
    seed = stable_seed(shape, percdamp, modulo=1000)
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(*shape, generator=g)
    x = activations(shape[1], seed)
    hessian = 2.0 / x.shape[0] * x.T @ x
    keep = torch.rand(*shape, generator=g) > 0.5  # any mask: random, so no method's structure helps
    expected = lstsq_oracle(weight, keep, hessian, percdamp)
    result = admm_update(weight, keep, hessian, percdamp=percdamp, iterations=300, rho_end=100.0)
    assert (result.weight[~keep] == 0).all()
    torch.testing.assert_close(result.weight.double(), expected, rtol=1e-3, atol=1e-4)
    oracle_error = layer_error((expected - weight.double()).float(), hessian)
    assert result.error_after <= oracle_error * (1 + 1e-4) + 1e-6


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("setting", [{"sparsity": 0.5}, {"pattern": "2:4"}])
def test_admm_keeps_the_mask_and_lowers_the_error(method, setting):
    seed = stable_seed(method, str(setting), modulo=1000)
    weight = torch.randn(24, 64, generator=torch.Generator().manual_seed(seed))
    x = activations(64, seed)
    stats = LayerStatistics(64, want_norms=True, want_hessian=True)
    stats.add(x)
    prune = {"magnitude": prune_magnitude, "wanda": prune_wanda, "sparsegpt": prune_sparsegpt}[method]
    config = PruneConfig(method=method, **setting)
    pruned = prune(weight, stats, config)
    result = admm_update(weight, pruned.keep, stats.hessian(), start=pruned.weight)
    assert (result.weight[~pruned.keep] == 0).all()
    if config.pattern is not None:
        groups = (result.weight == 0).reshape(24, -1, 4).sum(dim=2)
        assert (groups >= 2).all()
    assert result.error_before == pytest.approx(layer_error(pruned.weight - weight, stats.hessian()))
    assert result.error_after < result.error_before


def test_admm_refuses_bad_arguments():
    weight = torch.randn(4, 8)
    hessian = torch.eye(8)
    with pytest.raises(ValueError, match="iterations"):
        admm_update(weight, weight > 0, hessian, iterations=0)
    with pytest.raises(ValueError, match="do not fit"):
        admm_update(weight, torch.ones(4, 7, dtype=torch.bool), hessian)
    with pytest.raises(ValueError, match="rho"):
        admm_update(weight, weight > 0, hessian, rho_start=2.0, rho_end=1.0)
