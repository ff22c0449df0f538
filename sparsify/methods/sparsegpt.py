"""SparseGPT (Frantar & Alistarh, 2023): prune with second-order weight updates.

``H = 2/n * sum x x^T`` (float32). Inputs that never fire (zero diagonal) get ``H_ii = 1`` and their
weights zeroed. Damping ``lambda = percdamp * mean(diag H)`` is added to the diagonal; when the Cholesky
factorisation fails the damping is raised tenfold, up to :data:`MAX_DAMPING_STEPS` times, and the value
used is reported. ``Hinv`` is the upper Cholesky factor of ``H^-1``; the blocked solve itself (mask
selection, OBS updates, lazy trailing update) runs in :mod:`polysparse.kernels.sparsegpt`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from polysparse.kernels.sparsegpt import sparsegpt_solve
from polysparse.sparsify.config import PruneConfig
from polysparse.sparsify.methods.common import LayerResult, check_prunable
from polysparse.sparsify.stats import LayerStatistics, NonFiniteError

log = logging.getLogger("polysparse.sparsify")

MAX_DAMPING_STEPS = 6
"""Tenfold damping increases tried after the configured one fails (0.01 -> ... -> 1e4)."""


class HessianError(ValueError):
    """The Hessian stayed non positive-definite under every damping tried."""


@dataclass(frozen=True)
class HessianFactor:
    """``hinv``: upper Cholesky factor of the damped ``H^-1``; ``dead``: inputs with a zero diagonal;
    ``percdamp``: the damping that worked; ``diagonal``: True when only ``diag(H)`` could be used."""

    hinv: torch.Tensor
    dead: torch.Tensor
    percdamp: float
    diagonal: bool = False


def _upper_inverse_factor(H: torch.Tensor) -> torch.Tensor | None:
    lower, info = torch.linalg.cholesky_ex(H)
    if info.item() != 0:
        return None
    upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
    return upper if info.item() == 0 and torch.isfinite(upper).all() else None


def inverse_hessian_factor(hessian: torch.Tensor, percdamp: float) -> HessianFactor:
    """Factor the damped inverse Hessian, raising the damping tenfold while the Cholesky fails.

    When no damping up to ``percdamp * 10**MAX_DAMPING_STEPS`` helps (a badly conditioned or corrupted
    Hessian), the off-diagonal terms are dropped: with ``diag(H)`` alone SparseGPT still prunes by
    ``w^2 * H_ii`` and updates nothing across inputs, instead of stopping the run. A Hessian without a
    positive diagonal cannot come from activations and raises :class:`HessianError`.
    """
    H = hessian.detach().clone().float()
    if not torch.isfinite(H).all():
        raise NonFiniteError("NaN or Inf in the Hessian")
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    mean_diag = torch.diagonal(H).mean()
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    damp = percdamp
    for _ in range(MAX_DAMPING_STEPS + 1):
        upper = _upper_inverse_factor(H + damp * mean_diag * eye) if mean_diag > 0 else None
        if upper is not None:
            return HessianFactor(upper, dead, damp)
        damp *= 10.0
    diagonal = torch.diagonal(H)
    if (diagonal > 0).all():
        upper = _upper_inverse_factor(torch.diag(diagonal * (1.0 + percdamp)))
        if upper is not None:
            return HessianFactor(upper, dead, percdamp, diagonal=True)
    raise HessianError(
        f"the Hessian is not positive-definite even with damping {damp / 10:g} x mean(diag H), and its "
        "diagonal is not positive; the calibration activations of this layer are degenerate"
    )


def prune_sparsegpt(weight: torch.Tensor, stats: LayerStatistics, config: PruneConfig) -> LayerResult:
    """Prune one layer with SparseGPT; ``info`` holds damping and the reconstruction error."""
    check_prunable(weight, config)
    if stats is None or stats.xtx is None:
        raise ValueError("SparseGPT needs the input Hessian of this layer")
    device = weight.device
    xtx = stats.xtx.to(device=device, dtype=torch.float32)
    factor = inverse_hessian_factor(stats.hessian().to(device), config.percdamp)
    hinv, dead, damp = factor.hinv, factor.dead, factor.percdamp
    if factor.diagonal:
        log.warning("Hessian not positive-definite at any damping; used its diagonal only")
    elif damp != config.percdamp:
        log.warning("Hessian not positive-definite at percdamp=%g; used %g", config.percdamp, damp)
    original = weight.detach().float()
    start = original.clone()
    start[:, dead] = 0.0
    if config.pattern is not None:
        new_weight, keep = sparsegpt_solve(
            start, hinv, n=config.pattern.n, m=config.pattern.m, blocksize=config.blocksize
        )
    else:
        new_weight, keep = sparsegpt_solve(
            start, hinv, sparsity=config.target_sparsity, blocksize=config.blocksize
        )
    if not torch.isfinite(new_weight).all():
        raise NonFiniteError("the SparseGPT update produced NaN or Inf")
    delta = original - new_weight
    error = ((delta @ xtx) * delta).sum().item()
    energy = ((original @ xtx) * original).sum().item()
    info = {
        "percdamp": damp,
        "damping_raised": damp != config.percdamp,
        "diagonal_hessian": factor.diagonal,
        "dead_inputs": int(dead.sum().item()),
        "tokens": stats.ntokens,
        "reconstruction_error": error,
        "relative_error": error / energy if energy > 0 else 0.0,
    }
    return LayerResult(weight=new_weight.to(weight.dtype), keep=keep, info=info)
