"""2:4 weights for the format tests (:mod:`polysparse.kernels.sparse24` and its converters)."""

import torch

from polysparse.kernels import dispatch
from polysparse.kernels.topk_mask import nm_mask_reference

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
# Kernels run where Triton runs: CPU tensors through the interpreter, or CUDA with POLYSPARSE_TEST_GPU=1.
DEVICE = torch.device("cpu" if dispatch.interpreter_enabled() else "cuda")


def random_24(
    rows: int, cols: int, dtype: torch.dtype, gen: torch.Generator, empty: float = 0.2
) -> torch.Tensor:
    """A random 2:4 weight in which a fraction of the kept weights are zero (groups with < 2 nonzeros)."""
    w = torch.randn(rows, cols, generator=gen)
    keep = nm_mask_reference(w, None, 2, 4)
    keep &= torch.rand(rows, cols, generator=gen) >= empty
    return (w * keep).to(dtype).to(DEVICE)


def assert_bitwise(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(
        a.view(torch.uint8) if a.is_floating_point() else a,
        b.view(torch.uint8) if b.is_floating_point() else b,
    )
