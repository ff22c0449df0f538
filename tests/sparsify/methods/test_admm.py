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


@pytest.mark.parametrize("solver", ["eigen", "cholesky"])
@pytest.mark.parametrize("shape", [(12, 32), (7, 40), (20, 64), (80, 48)])
@pytest.mark.parametrize("percdamp", [0.01, 0.1])
def test_admm_matches_lstsq_oracle(shape, percdamp, solver):
    seed = stable_seed(shape, percdamp, modulo=1000)
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(*shape, generator=g)
    x = activations(shape[1], seed)
    hessian = 2.0 / x.shape[0] * x.T @ x
    keep = torch.rand(*shape, generator=g) > 0.5  # any mask: random, so no method's structure helps
    expected = lstsq_oracle(weight, keep, hessian, percdamp)
    result = admm_update(
        weight, keep, hessian, percdamp=percdamp, iterations=300, rho_end=100.0, solver=solver
    )
    assert (result.weight[~keep] == 0).all()
    torch.testing.assert_close(result.weight.double(), expected, rtol=1e-3, atol=1e-4)
    oracle_error = layer_error((expected - weight.double()).float(), hessian)
    assert result.error_after <= oracle_error * (1 + 1e-4) + 1e-6


def admm_iterates_float64(weight, keep, hessian, start, iterations, percdamp=0.01, rho=(0.1, 10.0)):
    """The module doc's iterations written out in float64 with a fresh ``torch.linalg.solve`` per rho."""
    H = damped_hessian(hessian, percdamp).double()
    scale = torch.diagonal(H).sqrt()
    Hn = H / scale[:, None] / scale[None, :]
    mask = keep.double()
    target = (weight.double() * scale) @ Hn
    z = start.double() * scale * mask
    u = torch.zeros_like(z)
    growth = (rho[1] / rho[0]) ** (1.0 / (iterations - 1))
    step = rho[0]
    for _ in range(iterations):
        shifted = Hn + step * torch.eye(Hn.shape[0], dtype=torch.float64)
        v = torch.linalg.solve(shifted, (target + step * (z - u)).T).T
        z = (v + u) * mask
        u = (u + v - z) / growth
        step *= growth
    return z / scale


@pytest.mark.parametrize("shape", [(40, 96), (96, 40), (64, 64)])
def test_eigen_solver_computes_the_cholesky_iterates(shape):
    """One eigendecomposition for every rho gives the per-iteration Cholesky path's result (fp32 rounding).

    Both are compared with the same 20 iterations in float64: the eigen path may be off by no more than a
    small multiple of the Cholesky path's own float32 rounding (measured 3-4x on these ill-conditioned
    Hessians: fp32 ``eigh`` is less exact than a Cholesky factor). Both association orders of the eigen
    product are covered: fewer rows than inputs, more, and equal.
    """
    seed = stable_seed("eigen", shape, modulo=1000)
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(*shape, generator=g)
    x = activations(shape[1], seed, tokens=3 * shape[1])
    hessian = 2.0 / x.shape[0] * x.T @ x
    keep = torch.rand(*shape, generator=g) > 0.5
    start = weight * keep + 0.1 * torch.randn(*shape, generator=g) * keep
    exact = admm_iterates_float64(weight, keep, hessian, start, iterations=20)
    runs = {
        solver: admm_update(weight, keep, hessian, start=start, iterations=20, solver=solver)
        for solver in ("eigen", "cholesky")
    }
    eigen, cholesky = runs["eigen"], runs["cholesky"]
    assert (eigen.weight[~keep] == 0).all()
    cholesky_rounding = (cholesky.weight.double() - exact).abs().max().item()
    assert cholesky_rounding < 1e-4  # the reference itself is the float64 iteration, up to fp32 rounding
    assert (eigen.weight.double() - exact).abs().max().item() <= 8 * cholesky_rounding + 1e-6
    assert eigen.error_after == pytest.approx(cholesky.error_after, rel=1e-5)
    assert eigen.primal_residual == pytest.approx(cholesky.primal_residual, rel=1e-2)
    # 20 iterations are not converged: these are equal iterates, not merely equal limits.
    limit = admm_iterates_float64(weight, keep, hessian, start, iterations=300, rho=(0.1, 100.0))
    assert (limit - exact).abs().max().item() > 100 * cholesky_rounding


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
    with pytest.raises(ValueError, match="solver"):
        admm_update(weight, weight > 0, hessian, solver="qr")
