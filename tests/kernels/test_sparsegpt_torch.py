"""The CPU fast path of the SparseGPT solve (``sparsegpt_solve_torch``) against the reference loop."""

from __future__ import annotations

import zlib

import pytest
import torch

from polysparse.kernels import sparsegpt as sg


def problem(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    X = torch.randn(cols, 2 * cols, generator=g)
    X[torch.randperm(cols, generator=g)[:3]] *= 6.0  # outlier features, as in real layers
    H = 2 / (2 * cols) * X @ X.T
    H += 0.01 * H.diagonal().mean() * torch.eye(cols)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    return weight, X, hinv


@pytest.mark.parametrize("shape", [(16, 32), (7, 48), (33, 96), (64, 256)])
@pytest.mark.parametrize(
    "pattern", [{"sparsity": 0.5}, {"sparsity": 0.3}, {"n": 2, "m": 4}, {"n": 4, "m": 8}]
)
@pytest.mark.parametrize("blocksize", [16, 32, 128])
def test_fast_path_matches_the_reference(shape, pattern, blocksize):
    weight, X, hinv = problem(*shape, zlib.crc32(repr((shape, pattern, blocksize)).encode()))
    original = weight.clone()
    W_ref, keep_ref = sg.sparsegpt_solve_reference(weight, hinv, blocksize=blocksize, **pattern)
    W_new, keep = sg.sparsegpt_solve_torch(weight, hinv, blocksize=blocksize, **pattern)
    assert torch.equal(weight, original)
    assert torch.equal(keep, keep_ref)
    assert (W_new[~keep] == 0).all()
    torch.testing.assert_close(W_new, W_ref, rtol=1e-4, atol=1e-5)


def test_the_cpu_wrapper_takes_the_fast_path_unless_the_reference_is_asked_for(monkeypatch):
    weight, _, hinv = problem(8, 32, 1)
    calls = []
    monkeypatch.setattr(
        sg, "sparsegpt_solve_torch", lambda *a, **k: calls.append("torch") or (weight, weight > 0)
    )
    monkeypatch.setenv("POLYSPARSE_KERNELS", "auto")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    sg.sparsegpt_solve(weight, hinv, sparsity=0.5)
    assert calls == ["torch"]
    sg.sparsegpt_solve(weight, hinv, sparsity=0.5, impl="reference")
    monkeypatch.setenv("POLYSPARSE_KERNELS", "reference")
    sg.sparsegpt_solve(weight, hinv, sparsity=0.5)
    assert calls == ["torch"]
