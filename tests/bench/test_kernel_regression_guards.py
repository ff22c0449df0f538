"""pytest-benchmark regression guards for the kernels, on one real shape each (GPU only).

Each guard times one kernel and checks what it returned against the kernel's reference, so a run that
is fast because it computes the wrong thing fails. The timings are a report, not a pass/fail. On a GPU
machine, save a baseline and compare later runs (``--benchmark-enable``: the project's pytest
configuration disables timing by default, and then each guard runs its kernel once):

    POLYSPARSE_TEST_GPU=1 pytest -m gpu tests/bench/test_kernel_regression_guards.py --benchmark-enable \\
        --benchmark-autosave
    POLYSPARSE_TEST_GPU=1 pytest -m gpu tests/bench/test_kernel_regression_guards.py --benchmark-enable \\
        --benchmark-compare --benchmark-compare-fail=median:10%

Provider-vs-provider numbers for the README come from ``python -P -m polysparse.bench.kernels.<op>``.
"""

import pytest
import torch
import torch.nn.functional as F

pytestmark = [pytest.mark.gpu, pytest.mark.triton_kernels]


def _sync(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def test_guard_unstructured_mask_llama_mlp(benchmark):
    from polysparse.kernels import unstructured_mask, unstructured_mask_reference

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    scale = torch.rand(4096, device="cuda")
    keep = benchmark(_sync(lambda: unstructured_mask(weight, scale, prune_per_row=2048, impl="triton")))
    assert torch.equal(keep, unstructured_mask_reference(weight, scale, 2048))


def test_guard_nm_mask_llama_mlp(benchmark):
    from polysparse.kernels import nm_mask, nm_mask_reference

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    scale = torch.rand(4096, device="cuda")
    keep = benchmark(_sync(lambda: nm_mask(weight, scale, n=2, m=4, impl="triton")))
    assert torch.equal(keep, nm_mask_reference(weight, scale, 2, 4))


def test_guard_sparsegpt_solve_4096(benchmark):
    from polysparse.kernels import sparsegpt_solve, sparsegpt_solve_reference

    weight = torch.randn(4096, 4096, device="cuda")
    x = torch.randn(8192, 4096, device="cuda")
    hessian = 2 * x.t() @ x / x.shape[0] + 0.01 * torch.eye(4096, device="cuda")
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hessian)), upper=True)
    new_weight, keep = benchmark.pedantic(
        _sync(lambda: sparsegpt_solve(weight, hinv, n=2, m=4, impl="triton")), rounds=5, warmup_rounds=1
    )
    reference_weight, _ = sparsegpt_solve_reference(weight, hinv, n=2, m=4)
    assert (new_weight[~keep] == 0).all()
    assert (keep.reshape(4096, -1, 4).sum(-1) == 2).all()

    def error(pruned):
        return ((weight - pruned) @ x.t()).pow(2).sum().item()

    assert abs(error(new_weight) - error(reference_weight)) <= 0.01 * error(reference_weight)


@pytest.mark.parametrize("m", [1, 16, 2048])
def test_guard_sparse24_linear_llama_up_proj(benchmark, m):
    from polysparse.kernels import decompress_24, prune_and_compress_24, sparse24_linear

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    values, meta = prune_and_compress_24(weight)
    x = torch.randn(m, 4096, device="cuda", dtype=torch.float16)
    y = benchmark(_sync(lambda: sparse24_linear(x, values, meta, impl="triton")))
    # The product in float32 rounded once to float16, as the kernel tests compare it.
    expected = F.linear(x.float(), decompress_24(values, meta).float()).to(torch.float16)
    torch.testing.assert_close(y, expected, rtol=2e-3, atol=2e-3)
