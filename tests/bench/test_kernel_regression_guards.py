"""pytest-benchmark regression guards for the kernels, on one real shape each (GPU only).

These record timings; they assert no speed. On a GPU machine, save a baseline and compare later runs:

    POLYSPARSE_TEST_GPU=1 pytest -m gpu tests/bench/test_kernel_regression_guards.py --benchmark-autosave
    POLYSPARSE_TEST_GPU=1 pytest -m gpu tests/bench/test_kernel_regression_guards.py \\
        --benchmark-compare --benchmark-compare-fail=median:10%

Provider-vs-provider numbers for the README come from ``python -P -m polysparse.bench.kernels.<op>``.
"""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.triton_kernels]


def _sync(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def test_guard_unstructured_mask_llama_mlp(benchmark):
    from polysparse.kernels.topk_mask import unstructured_mask

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    scale = torch.rand(4096, device="cuda")
    benchmark(_sync(lambda: unstructured_mask(weight, scale, prune_per_row=2048, impl="triton")))


def test_guard_nm_mask_llama_mlp(benchmark):
    from polysparse.kernels.topk_mask import nm_mask

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    scale = torch.rand(4096, device="cuda")
    benchmark(_sync(lambda: nm_mask(weight, scale, n=2, m=4, impl="triton")))


def test_guard_sparsegpt_solve_4096(benchmark):
    from polysparse.kernels.sparsegpt import sparsegpt_solve

    weight = torch.randn(4096, 4096, device="cuda")
    x = torch.randn(8192, 4096, device="cuda")
    hessian = 2 * x.t() @ x / x.shape[0] + 0.01 * torch.eye(4096, device="cuda")
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hessian)), upper=True)
    benchmark.pedantic(
        _sync(lambda: sparsegpt_solve(weight, hinv, n=2, m=4, impl="triton")), rounds=5, warmup_rounds=1
    )


@pytest.mark.parametrize("m", [1, 16, 2048])
def test_guard_sparse24_linear_llama_up_proj(benchmark, m):
    from polysparse.kernels.sparse24 import prune_and_compress_24
    from polysparse.kernels.sparse24_matmul import sparse24_linear

    weight = torch.randn(14336, 4096, device="cuda", dtype=torch.float16)
    values, meta = prune_and_compress_24(weight)
    x = torch.randn(m, 4096, device="cuda", dtype=torch.float16)
    benchmark(_sync(lambda: sparse24_linear(x, values, meta, impl="triton")))
