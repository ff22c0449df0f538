"""Conversions of the 2:4 format to compressed-tensors' ``sparse-24-bitmask`` and PyTorch's CUTLASS layout and
semi-structured tensors: exact round trips and validation errors."""

from __future__ import annotations

import pytest
import torch

from helpers.sparse24_weights import DEVICE, DTYPES, assert_bitwise, random_24
from polysparse.kernels import sparse24 as s24
from polysparse.kernels import sparse24_convert as s24c

# ----------------------------------------------------------------------------------------------------------
# compressed-tensors sparse-24-bitmask
# ----------------------------------------------------------------------------------------------------------


def ct_decompress(compressed: torch.Tensor, bitmask: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """compressed-tensors' decompression, restated: unpack little-endian bits, scatter row-major."""
    rows, cols = shape
    bits = (bitmask.int().unsqueeze(-1) >> torch.arange(8, device=bitmask.device)) & 1
    mask = bits.reshape(rows, -1)[:, :cols].bool()
    dense = torch.zeros(rows, cols, dtype=compressed.dtype, device=compressed.device)
    dense[mask] = compressed.flatten()
    return dense


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (7, 12), (16, 64)])
def test_sparse24_bitmask_round_trip(dtype, shape):
    w = random_24(*shape, dtype, torch.Generator().manual_seed(5))
    values, meta = s24.compress_24(w)
    compressed, bitmask, dense_shape = s24c.to_sparse24_bitmask(values, meta)
    assert dense_shape == list(shape)
    assert bitmask.dtype == torch.uint8 and bitmask.shape == (shape[0], -(-shape[1] // 8))
    assert compressed.shape == (shape[0], shape[1] // 2)
    assert torch.equal(ct_decompress(compressed, bitmask, dense_shape), w)
    v2, m2 = s24c.from_sparse24_bitmask(compressed, bitmask, torch.tensor(dense_shape).reshape(-1, 1))
    assert v2.device == m2.device == values.device
    assert_bitwise(v2, values)
    assert torch.equal(m2, meta)


def test_sparse24_bitmask_matches_numpy_packbits():
    np = pytest.importorskip("numpy")
    w = random_24(9, 44, torch.float32, torch.Generator().manual_seed(6))
    values, meta = s24.compress_24(w)
    _, bitmask, _ = s24c.to_sparse24_bitmask(values, meta)
    keep = s24.keep_from_meta(meta, 44).cpu().numpy()
    assert (bitmask.cpu().numpy() == np.packbits(keep, axis=-1, bitorder="little")).all()


def test_sparse24_bitmask_errors():
    values, meta = s24.compress_24(torch.zeros(3, 16, device=DEVICE))
    compressed, bitmask, shape = s24c.to_sparse24_bitmask(values, meta)
    bad = bitmask.clone()
    bad[2, 0] |= 0b0100  # row 2, group 0 now has three bits
    with pytest.raises(ValueError, match=r"row 2, columns 0\.\.3 have 3 bits set"):
        s24c.from_sparse24_bitmask(compressed, bad, shape)
    with pytest.raises(ValueError, match="compressed must have shape"):
        s24c.from_sparse24_bitmask(compressed[:, :4], bitmask, shape)
    with pytest.raises(ValueError, match="bitmask must be uint8"):
        s24c.from_sparse24_bitmask(compressed, bitmask[:, :1], shape)


# ----------------------------------------------------------------------------------------------------------
# PyTorch's CUTLASS layout (pure torch) and semi-structured tensors (CUDA)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cutlass_layout_matches_torch(dtype):
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    gen = torch.Generator().manual_seed(7)
    # All kept weights nonzero, so PyTorch and polysparse choose the same positions.
    w = random_24(64, 128, dtype, gen, empty=0.0).cpu()
    values, meta = s24.compress_24(w, impl="reference")
    packed, meta_reordered = s24c.to_cutlass_layout(values, meta)
    packed_t, meta_t = conv.sparse_semi_structured_from_dense_cutlass(w)
    assert_bitwise(packed, packed_t)
    assert torch.equal(meta_reordered, meta_t)


def test_cutlass_layout_round_trip_with_partial_groups():
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    w = random_24(96, 192, torch.float16, torch.Generator().manual_seed(8), empty=0.4).cpu()
    values, meta = s24.compress_24(w, impl="reference")
    packed, meta_reordered = s24c.to_cutlass_layout(values, meta)
    assert torch.equal(conv.sparse_semi_structured_to_dense_cutlass(packed, meta_reordered), w)
    v2, m2 = s24c.from_cutlass_layout(packed, meta_reordered)
    assert_bitwise(v2, values)
    assert torch.equal(m2, meta)


def test_cutlass_layout_shape_error():
    values, meta = s24.compress_24(torch.zeros(16, 64, dtype=torch.float16))
    with pytest.raises(ValueError, match="out_features % 32"):
        s24c.to_cutlass_layout(values, meta)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_torch_semi_structured_needs_cuda():
    values, meta = s24.compress_24(torch.zeros(32, 64, dtype=torch.float16))
    with pytest.raises(RuntimeError, match="need a CUDA device"):
        s24c.to_torch_semi_structured(values, meta)
    assert s24c.semi_structured_reason("cpu") is not None


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cutlass", "cusparselt", "auto"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_semi_structured_round_trip_gpu(backend, dtype):
    if s24c.semi_structured_reason("cuda") is not None:
        pytest.skip(s24c.semi_structured_reason("cuda"))
    if backend == "cusparselt" and not torch.backends.cusparselt.is_available():
        pytest.skip("no cuSPARSELt in this torch build")
    gen = torch.Generator().manual_seed(9)
    w = random_24(128, 256, dtype, gen, empty=0.2).cuda()
    values, meta = s24.compress_24(w, impl="reference")
    t = s24c.to_torch_semi_structured(values, meta, backend=backend)
    assert torch.equal(t.to_dense(), w)
    v2, m2 = s24c.from_torch_semi_structured(t)
    assert torch.equal(s24.decompress_24_reference(v2, m2), w)
    if backend == "cutlass":
        assert torch.equal(m2, meta)
        # built by PyTorch from the dense matrix: its own positions for partial groups, the same weight
        t_torch = torch.sparse.SparseSemiStructuredTensorCUTLASS.from_dense(w)
        v3, m3 = s24c.from_torch_semi_structured(t_torch)
        assert torch.equal(s24.decompress_24_reference(v3, m3), w)
    x = torch.randn(64, 256, generator=gen).to(dtype).cuda()
    tol = 2e-3 if dtype == torch.float16 else 1.6e-2  # one output ulp: accumulation order differs
    torch.testing.assert_close(
        torch.nn.functional.linear(x, t), torch.nn.functional.linear(x, w), rtol=tol, atol=tol
    )
