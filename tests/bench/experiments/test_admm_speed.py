"""The ADMM speed benchmark's alternative schedule: rho changed every iteration, it is the library's ADMM."""

import torch

from polysparse.bench.experiments.admm_speed import _layer, held_rho_update
from polysparse.sparsify.methods.admm import admm_update


def test_held_rho_with_hold_one_is_the_library_schedule():
    weight, keep, hessian = _layer(24, 32, torch.Generator().manual_seed(3))
    held = held_rho_update(weight, keep, hessian, iterations=12, hold=1)
    library = admm_update(weight, keep, hessian, iterations=12, solver="cholesky")
    torch.testing.assert_close(held, library.weight, rtol=1e-5, atol=1e-6)
    assert (held[~keep] == 0).all()
    assert not torch.allclose(held_rho_update(weight, keep, hessian, iterations=12, hold=4), held)
