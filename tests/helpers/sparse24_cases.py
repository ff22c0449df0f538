"""Random 2:4 cases for the 2:4 matmul kernels' tests: weights, x, bias, and the float32 expectation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polysparse.kernels import dispatch
from polysparse.kernels import sparse24 as s24

# One output ulp (plus float32 accumulation-order noise near zero): the kernel and the float32 reference
# round the same float32 sums, so they may differ only where the sum sits on a rounding boundary.
TOL = {torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}

# Kernels run where Triton runs: CPU tensors through the interpreter, or CUDA with POLYSPARSE_TEST_GPU=1.
DEVICE = torch.device("cpu" if dispatch.interpreter_enabled() else "cuda")

_seed = iter(range(10_000, 1_000_000))


def make_case(batch, k, n, dtype, bias):
    """Fresh random inputs: a pruned 2:4 weight (some kept weights zero), x, and an optional bias."""
    gen = torch.Generator().manual_seed(next_seed())
    w = torch.randn(n, k, generator=gen)
    w = w * (torch.rand(n, k, generator=gen) > 0.1)  # groups with fewer than two nonzeros too
    values, meta = s24.prune_and_compress_24(w.to(dtype).to(DEVICE), impl="reference")
    dense = s24.decompress_24_reference(values, meta)
    x = torch.randn(*batch, k, generator=gen).to(dtype).to(DEVICE)
    b = torch.randn(n, generator=gen).to(dtype).to(DEVICE) if bias else None
    return x, values, meta, b, dense


def expected(x, dense, b):
    """The product in float32, rounded once to x's dtype."""
    return F.linear(x.float(), dense.float(), None if b is None else b.float()).to(x.dtype)


def next_seed() -> int:
    """A fresh generator seed (every case gets its own)."""
    return next(_seed)


def unaligned_views(values: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same values and metadata as views starting 2 and 4 elements into their storage (4 and 8 bytes in
    fp16 / int16), which the kernels' 16-byte loads cannot take as they are."""
    flat_values = torch.zeros(values.numel() + 2, dtype=values.dtype, device=DEVICE)
    flat_values[2:] = values.flatten()
    flat_meta = torch.zeros(meta.numel() + 4, dtype=meta.dtype, device=DEVICE)
    flat_meta[4:] = meta.flatten()
    return flat_values[2:].view(values.shape), flat_meta[4:].view(meta.shape)
