"""The optimal weight update for a given mask, solved with ADMM (Boža, 2024).

Given a layer's dense weight ``W0`` (out x in), a keep-mask from any method and the Hessian
``H = 2/n * sum x x^T`` that SparseGPT accumulates, every row ``r`` has its own restricted least squares

    minimise  (w - w0_r)^T (H + lambda I) (w - w0_r)   subject to  w_j = 0 where the mask prunes j,

with the damping ``lambda = percdamp * mean(diag H)`` that SparseGPT uses (it keeps the problem
well-posed where inputs are collinear or dead). Its exact solution is ``w_S = (H_SS)^-1 (H w0)_S`` on the
kept set ``S`` of that row, a different system per row. ADMM solves all rows at once with one
factorisation: split ``w`` into a free copy ``v`` and a masked copy ``z`` tied by ``v = z``,

    v <- (H + rho I)^-1 (H w0 + rho (z - u))     (one matrix product for every row)
    z <- mask * (v + u)                           (projection onto the mask)
    u <- u + v - z                                (scaled dual)

The Hessian is first scaled to a unit diagonal (``D^-1 H D^-1`` with ``D = sqrt(diag H)``, weights times
``D``), as Boža does, so that one ``rho`` suits every layer. ``rho`` grows geometrically from
``rho_start`` to ``rho_end`` over the iterations (Boža's schedule: early iterations move freely, late ones
hold ``v`` to the mask). The result is ``z``: exactly zero where the mask prunes, whatever the number of
iterations.

Since ``rho`` changes every iteration, the solve uses one eigendecomposition ``Hn = Q diag(l) Q^T`` per layer:
``(Hn + rho I)^-1 = (I - Q diag(l / (l + rho)) Q^T) / rho`` for every ``rho``, so an iteration costs matrix
products only. With fewer rows than inputs (``down_proj``) the rows go through ``Q`` and back (two
out x in x in products); otherwise the inverse is formed first (in x in x in, then out x in x in). That is
faster than a Cholesky factorisation and inverse per iteration (``solver="cholesky"``, kept as the
reference) for the same iterates; holding ``rho`` for several iterations to reuse one Cholesky inverse would
be faster still but is a different schedule with a higher layer error, so it is not used (measured in
docs/cpu-speed.md).

Pure function: nothing is modified in place; the result is float32 on the weight's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods.common import LayerResult
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError


@dataclass(frozen=True)
class ADMMResult:
    """The updated weight (float32, zero where ``keep`` is False) and what the solve measured."""

    weight: torch.Tensor
    error_before: float
    error_after: float
    primal_residual: float


def damped_hessian(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """``H + percdamp * mean(diag H) * I`` in float32; dead inputs (zero diagonal) get ``H_ii = 1`` first."""
    H = hessian.detach().float().clone()
    if not torch.isfinite(H).all():
        raise NonFiniteError("NaN or Inf in the Hessian")
    diagonal = torch.diagonal(H)
    diagonal[diagonal == 0] = 1.0
    diagonal += percdamp * diagonal.mean()
    return H


def layer_error(delta: torch.Tensor, hessian: torch.Tensor) -> float:
    """``sum_r delta_r^T H delta_r``: the layer's output error on the calibration tokens (up to ``2/n``)."""
    return ((delta @ hessian) * delta).sum().item()


SOLVERS: tuple[str, ...] = ("eigen", "cholesky")


def _inverse(matrix: torch.Tensor) -> torch.Tensor:
    lower, info = torch.linalg.cholesky_ex(matrix)
    if info.item() != 0:
        raise NonFiniteError("the damped Hessian is not positive-definite")
    return torch.cholesky_inverse(lower)


def shifted_solver(hessian: torch.Tensor, rows: int, solver: str = "eigen"):
    """``solve(rhs, rho) = rhs (hessian + rho I)^-1`` for ``rows`` x in right-hand sides, any ``rho > 0``.

    ``eigen``: one ``eigh`` now, matrix products per call. ``cholesky`` (the reference): a Cholesky
    factorisation and inverse whenever ``rho`` changes.
    """
    if solver == "cholesky":
        eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
        cache: dict[float, torch.Tensor] = {}

        def solve_cholesky(rhs: torch.Tensor, rho: float) -> torch.Tensor:
            if rho not in cache:
                cache.clear()
                cache[rho] = _inverse(hessian + rho * eye)
            return rhs @ cache[rho]

        return solve_cholesky
    if solver != "eigen":
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    try:
        eigenvalues, vectors = torch.linalg.eigh(hessian)
    except RuntimeError as error:  # torch.linalg.LinAlgError: the iteration did not converge
        raise NonFiniteError(f"the eigendecomposition of the damped Hessian failed: {error}") from None
    if eigenvalues.min().item() <= 0:
        raise NonFiniteError("the damped Hessian is not positive-definite")
    rows_first = rows < hessian.shape[0]  # 2 rows in^2 against in^3 + rows in^2 multiply-adds

    def solve_eigen(rhs: torch.Tensor, rho: float) -> torch.Tensor:
        # (H + rho I)^-1 = (I - Q diag(l / (l + rho)) Q^T) / rho: the identity is exact, so the rounding of
        # Q's orthogonality touches only the correction. Q diag(1 / (l + rho)) Q^T was 16x further from the
        # lstsq oracle (20 x 64 layer, 300 iterations up to rho = 100: 4.6e-4 off; this form 2.8e-5, the
        # Cholesky path 1.3e-5).
        shrink = eigenvalues / (eigenvalues + rho)
        if rows_first:
            return (rhs - ((rhs @ vectors) * shrink) @ vectors.T) / rho
        return (rhs - rhs @ ((vectors * shrink) @ vectors.T)) / rho

    return solve_eigen


def admm_update(
    weight: torch.Tensor,
    keep: torch.Tensor,
    hessian: torch.Tensor,
    *,
    percdamp: float = 0.01,
    iterations: int = 20,
    rho_start: float = 0.1,
    rho_end: float = 10.0,
    start: torch.Tensor | None = None,
    solver: str = "eigen",
) -> ADMMResult:
    """Solve the masked least squares of every row of ``weight`` for the kept weights (see module doc).

    ``weight`` is the dense (out x in) weight the layer had before pruning, ``keep`` the bool mask (True =
    kept), ``hessian`` the (in x in) ``2/n X^T X``. ``start`` (e.g. SparseGPT's updated weight) seeds the
    masked copy ``z``; by default the masked dense weight. ``error_before`` / ``error_after`` are
    ``sum_r (w_r - w0_r)^T H (w_r - w0_r)`` with the *undamped* ``H`` for ``start`` and the result.
    ``solver`` picks how ``(Hn + rho I)^-1`` is applied (see module doc); both compute the same iterates.
    """
    if weight.dim() != 2 or keep.shape != weight.shape:
        raise ValueError(f"weight {tuple(weight.shape)} and mask {tuple(keep.shape)} do not fit")
    if hessian.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"Hessian {tuple(hessian.shape)} does not fit in_features={weight.shape[1]}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive whole number, got {iterations!r}")
    if not 0 < rho_start <= rho_end:
        raise ValueError(f"need 0 < rho_start <= rho_end, got {rho_start}, {rho_end}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    device = weight.device
    w0 = weight.detach().float()
    mask = keep.to(device=device, dtype=torch.float32)
    undamped = hessian.detach().to(device=device, dtype=torch.float32)
    H = damped_hessian(undamped, percdamp)
    scale = torch.diagonal(H).sqrt()
    Hn = H / scale[:, None] / scale[None, :]
    v0 = w0 * scale  # rows of v0 are the rows of w0 in the scaled coordinates
    target = v0 @ Hn  # H w0 per row (Hn is symmetric)
    z = (start.detach().float().to(device) if start is not None else w0) * scale * mask
    initial = z / scale
    u = torch.zeros_like(z)
    solve = shifted_solver(Hn, w0.shape[0], solver)
    growth = (rho_end / rho_start) ** (1.0 / max(1, iterations - 1))
    rho = rho_start
    v = z
    for _ in range(iterations):
        v = solve(target + rho * (z - u), rho)
        z = (v + u) * mask
        u = u + v - z
        rho *= growth
        # The scaled dual must follow rho: u = y / rho for the unscaled multiplier y.
        u = u / growth
    result = z / scale
    if not torch.isfinite(result).all():
        raise NonFiniteError("the ADMM update produced NaN or Inf")
    primal = (torch.linalg.vector_norm(v - z) / torch.linalg.vector_norm(z).clamp_min(1e-30)).item()
    return ADMMResult(
        weight=result,
        error_before=layer_error(initial - w0, undamped),
        error_after=layer_error(result - w0, undamped),
        primal_residual=primal,
    )


def admm_refine(
    weight: torch.Tensor, pruned: LayerResult, stats: LayerStatistics, config: PruneConfig
) -> LayerResult:
    """``--update admm`` after any method: same mask, kept weights re-solved from the layer's Hessian.

    ``weight`` is the layer's dense weight, ``pruned`` the method's result (its mask, and its weight as the
    starting point: SparseGPT's update is already close to the optimum).
    """
    if stats is None or stats.xtx is None:
        raise ValueError("the ADMM update needs the input Hessian of this layer")
    solved = admm_update(
        weight,
        pruned.keep,
        stats.hessian().to(weight.device),
        percdamp=config.percdamp,
        iterations=config.admm_iterations,
        start=pruned.weight,
    )
    info = dict(pruned.info)
    info["admm"] = {
        "error_before": solved.error_before,
        "error_after": solved.error_after,
        "primal_residual": solved.primal_residual,
        "iterations": config.admm_iterations,
    }
    return LayerResult(weight=solved.weight.to(weight.dtype), keep=pruned.keep, info=info)
