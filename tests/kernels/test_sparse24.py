"""The 2:4 format: Triton (through the interpreter on CPU) against the PyTorch reference, exact round trips,
the documented metadata layout, validation errors, and the PyTorch / compressed-tensors layouts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.seeds import stable_seed
from polysparse.kernels import _dispatch
from polysparse.kernels import sparse24 as s24
from polysparse.kernels.topk_mask import nm_mask_reference

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
# Kernels run where Triton runs: CPU tensors through the interpreter, or CUDA with POLYSPARSE_TEST_GPU=1.
DEVICE = torch.device("cpu" if _dispatch.interpreter_enabled() else "cuda")


def random_24(
    rows: int, cols: int, dtype: torch.dtype, gen: torch.Generator, empty: float = 0.2
) -> torch.Tensor:
    """A random 2:4 weight in which a fraction of the kept weights are zero (groups with < 2 nonzeros)."""
    w = torch.randn(rows, cols, generator=gen)
    keep = nm_mask_reference(w, None, 2, 4)
    keep &= torch.rand(rows, cols, generator=gen) >= empty
    return (w * keep).to(dtype).to(DEVICE)


def both_impls(fn, *args):
    """Run a format op through Triton (interpreter) and the reference; return both results."""
    return fn(*args, impl="triton"), fn(*args, impl="reference")


def assert_bitwise(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(
        a.view(torch.uint8) if a.is_floating_point() else a,
        b.view(torch.uint8) if b.is_floating_point() else b,
    )


# ----------------------------------------------------------------------------------------------------------
# compress / decompress
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 4), (3, 12), (37, 100), (64, 256)])
def test_compress_decompress_round_trip(dtype, shape):
    gen = torch.Generator().manual_seed(stable_seed(shape, dtype))
    w = random_24(*shape, dtype, gen)
    (v_t, m_t), (v_r, m_r) = both_impls(s24.compress_24, w)
    assert v_t.shape == (shape[0], shape[1] // 2) and v_t.dtype == dtype
    assert m_t.shape == s24.meta_shape(*shape) and m_t.dtype == torch.int16
    assert_bitwise(v_t, v_r)
    assert torch.equal(m_t, m_r)
    for impl in ("triton", "reference"):
        assert torch.equal(s24.decompress_24(v_t, m_t, impl=impl), w)
    s24.check_meta(m_t, shape[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_decompress_writes_every_element(dtype):
    gen = torch.Generator().manual_seed(1)
    w = random_24(33, 72, dtype, gen)
    v, m = s24.compress_24(w, impl="reference")
    out = torch.full_like(w, float("nan"))
    result = s24.decompress_24(v, m, out=out, impl="triton")
    assert result is out
    assert torch.equal(out, w)


def test_compress_writes_every_element():
    gen = torch.Generator().manual_seed(2)
    w = random_24(35, 76, torch.float16, gen)
    values = torch.full((35, 38), float("nan"), dtype=torch.float16, device=DEVICE)
    meta = torch.full(s24.meta_shape(35, 76), -1, dtype=torch.int16, device=DEVICE)
    assert s24._compress_24_triton(w, values, meta, prune=False) is None
    v_r, m_r = s24.compress_24_reference(w)
    assert_bitwise(values, v_r)
    assert torch.equal(meta, m_r)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    groups=st.integers(1, 24),
    dtype=st.sampled_from(DTYPES),
    empty=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_compress_matches_reference_hypothesis(rows, groups, dtype, empty, seed):
    w = random_24(rows, 4 * groups, dtype, torch.Generator().manual_seed(seed), empty)
    (v_t, m_t), (v_r, m_r) = both_impls(s24.compress_24, w)
    assert_bitwise(v_t, v_r)
    assert torch.equal(m_t, m_r)
    assert torch.equal(s24.decompress_24(v_t, m_t, impl="triton"), w)
    assert torch.equal(s24.decompress_24(v_t, m_t, impl="reference"), w)


@pytest.mark.parametrize("impl", ["triton", "reference"])
def test_positions_of_groups_with_fewer_nonzeros(impl):
    # The documented rule: keep the nonzeros, complete with the lowest-indexed zeros.
    groups = [
        [0, 0, 0, 0],
        [5, 0, 0, 0],
        [0, 5, 0, 0],
        [0, 0, 5, 0],
        [0, 0, 0, 5],
        [0, 5, 0, 6],
        [7, 0, 0, 8],
    ]
    expected = [(0, 1), (0, 1), (0, 1), (0, 2), (0, 3), (1, 3), (0, 3)]
    w = torch.tensor([sum(groups, [])], dtype=torch.float32, device=DEVICE)
    values, meta = s24.compress_24(w, impl=impl)
    nib = s24.unpack_nibbles(meta, len(groups))[0]
    assert [(int(n) & 3, int(n) >> 2) for n in nib] == expected
    assert values.reshape(-1, 2).tolist() == [
        [g[p0], g[p1]] for g, (p0, p1) in zip(groups, expected, strict=True)
    ]


def test_metadata_layout_by_hand():
    # Groups with positions (0,1), (0,2), (1,3), (2,3) | (1,2): nibbles 4, 8, 13, 14 | 9.
    row = [1, 2, 0, 0, 3, 0, 4, 0, 0, 5, 0, 6, 0, 0, 7, 8, 0, 9, 10, 0]
    w = torch.tensor([row], dtype=torch.float16, device=DEVICE)
    for impl in ("triton", "reference"):
        values, meta = s24.compress_24(w, impl=impl)
        assert values.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
        word0 = 4 | 8 << 4 | 13 << 8 | 14 << 12  # 60804 as 16 bits, i.e. -4732 as int16
        assert meta.tolist() == [[word0 - 2**16, 9]]  # the second word: one group, unused nibbles zero


@pytest.mark.parametrize("impl", ["triton", "reference"])
def test_compress_names_first_bad_group(impl):
    w = torch.zeros(6, 24, device=DEVICE)
    w[4, 0:3] = 1.0  # later in row-major order than the next one
    w[2, 12:16] = torch.tensor([1.0, -2.0, 0.0, 3.0])
    w[2, 20:24] = 1.0
    with pytest.raises(ValueError, match=r"row 2, columns 12\.\.15 hold 3 nonzeros"):
        s24.compress_24(w, impl=impl)


@pytest.mark.parametrize("impl", ["triton", "reference"])
def test_nan_counts_as_nonzero(impl):
    w = torch.tensor([[float("nan"), 1.0, 2.0, 0.0]], device=DEVICE)
    with pytest.raises(ValueError, match="row 0, columns 0..3 hold 3 nonzeros"):
        s24.compress_24(w, impl=impl)


@pytest.mark.parametrize("fn", [s24.compress_24, s24.prune_and_compress_24])
def test_shape_errors(fn):
    with pytest.raises(ValueError, match="not a multiple of 4"):
        fn(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.zeros(8))


def test_decompress_shape_errors():
    v, m = s24.compress_24(torch.zeros(4, 32))
    with pytest.raises(ValueError, match="meta has shape"):
        s24.decompress_24(v, m[:, :1])
    with pytest.raises(ValueError, match="int16"):
        s24.decompress_24(v, m.to(torch.int32))
    with pytest.raises(ValueError, match="out must be"):
        s24.decompress_24(v, m, out=torch.empty(4, 16))


def test_check_meta_rejects_corrupt_words():
    w = torch.zeros(3, 20)
    _, meta = s24.compress_24(w)
    s24.check_meta(meta, 20)
    bad = meta.clone()
    bad[1, 0] = 0x4454  # all-zero groups are 0b0100; group 1 of row 1 becomes positions (1, 1)
    with pytest.raises(ValueError, match=r"row 1, columns 4\.\.7 have positions \(1, 1\)"):
        s24.check_meta(bad, 20)
    tail = meta.clone()
    tail[0, 1] |= 0b0100 << 4  # a nibble past the fifth (last) group
    with pytest.raises(ValueError, match="past the last group"):
        s24.check_meta(tail, 20)


def test_unsupported_dtype_falls_back_and_is_counted():
    w = torch.zeros(4, 8, dtype=torch.float64, device=DEVICE)
    before = _dispatch.fallback_counts[
        ("compress_24", "dtype torch.float64 (the kernel takes fp16, bf16, fp32)")
    ]
    v, m = s24.compress_24(w)
    assert v.dtype == torch.float64
    assert (
        _dispatch.fallback_counts[("compress_24", "dtype torch.float64 (the kernel takes fp16, bf16, fp32)")]
        == before + 1
    )
    with pytest.raises(RuntimeError, match="cannot run"):
        s24.compress_24(w, impl="triton")


# ----------------------------------------------------------------------------------------------------------
# prune_and_compress
# ----------------------------------------------------------------------------------------------------------


def check_prune(w: torch.Tensor, scale: torch.Tensor | None) -> None:
    keep = nm_mask_reference(w, scale, 2, 4)
    (v_t, m_t), (v_r, m_r) = both_impls(s24.prune_and_compress_24, w, scale)
    assert torch.equal(m_t, m_r)
    assert torch.equal(s24.keep_from_meta(m_t, w.shape[1]), keep)
    assert_bitwise(v_t, v_r)
    assert_bitwise(v_t, w[keep].reshape(w.shape[0], -1))
    s24.check_meta(m_t, w.shape[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_prune_and_compress_matches_nm_mask(dtype):
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(29, 96, generator=gen).to(dtype).to(DEVICE)
    check_prune(w, None)
    check_prune(w, (torch.rand(96, generator=gen) * 3).to(DEVICE))


def test_prune_and_compress_ties_and_nan():
    gen = torch.Generator().manual_seed(4)
    # Small integers make ties frequent; whole groups of equal scores, zeros, signs and NaN included.
    w = torch.randint(-2, 3, (40, 64), generator=gen).float()
    w[0] = 1.0
    w[1, :4] = torch.tensor([float("nan"), 1.0, float("nan"), 2.0])
    w[2, :4] = torch.tensor([float("nan")] * 4)
    w[3, :4] = torch.tensor([float("inf"), float("nan"), 0.0, -float("inf")])
    check_prune(w.to(DEVICE), None)
    scale = torch.randint(0, 3, (64,), generator=gen).float()  # zeros in the scale tie whole columns
    check_prune(w.to(DEVICE), scale.to(DEVICE))


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 33),
    groups=st.integers(1, 20),
    dtype=st.sampled_from(DTYPES),
    levels=st.sampled_from([3, 1000]),
    with_scale=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_prune_and_compress_hypothesis(rows, groups, dtype, levels, with_scale, seed):
    gen = torch.Generator().manual_seed(seed)
    cols = 4 * groups
    w = (torch.randint(-levels, levels + 1, (rows, cols), generator=gen) / levels).to(dtype).to(DEVICE)
    scale = torch.rand(cols, generator=gen).to(DEVICE) if with_scale else None
    check_prune(w, scale)


def test_prune_scale_length_error():
    with pytest.raises(ValueError, match="scale has 3 entries"):
        s24.prune_and_compress_24(torch.zeros(2, 8), torch.ones(3))


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
    compressed, bitmask, dense_shape = s24.to_sparse24_bitmask(values, meta)
    assert dense_shape == list(shape)
    assert bitmask.dtype == torch.uint8 and bitmask.shape == (shape[0], -(-shape[1] // 8))
    assert compressed.shape == (shape[0], shape[1] // 2)
    assert torch.equal(ct_decompress(compressed, bitmask, dense_shape), w)
    v2, m2 = s24.from_sparse24_bitmask(compressed, bitmask, torch.tensor(dense_shape).reshape(-1, 1))
    assert v2.device == m2.device == values.device
    assert_bitwise(v2, values)
    assert torch.equal(m2, meta)


def test_sparse24_bitmask_matches_numpy_packbits():
    np = pytest.importorskip("numpy")
    w = random_24(9, 44, torch.float32, torch.Generator().manual_seed(6))
    values, meta = s24.compress_24(w)
    _, bitmask, _ = s24.to_sparse24_bitmask(values, meta)
    keep = s24.keep_from_meta(meta, 44).cpu().numpy()
    assert (bitmask.cpu().numpy() == np.packbits(keep, axis=-1, bitorder="little")).all()


def test_sparse24_bitmask_errors():
    values, meta = s24.compress_24(torch.zeros(3, 16, device=DEVICE))
    compressed, bitmask, shape = s24.to_sparse24_bitmask(values, meta)
    bad = bitmask.clone()
    bad[2, 0] |= 0b0100  # row 2, group 0 now has three bits
    with pytest.raises(ValueError, match=r"row 2, columns 0\.\.3 have 3 bits set"):
        s24.from_sparse24_bitmask(compressed, bad, shape)
    with pytest.raises(ValueError, match="compressed must have shape"):
        s24.from_sparse24_bitmask(compressed[:, :4], bitmask, shape)
    with pytest.raises(ValueError, match="bitmask must be uint8"):
        s24.from_sparse24_bitmask(compressed, bitmask[:, :1], shape)


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
    packed, meta_reordered = s24.to_cutlass_layout(values, meta)
    packed_t, meta_t = conv.sparse_semi_structured_from_dense_cutlass(w)
    assert_bitwise(packed, packed_t)
    assert torch.equal(meta_reordered, meta_t)


def test_cutlass_layout_round_trip_with_partial_groups():
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    w = random_24(96, 192, torch.float16, torch.Generator().manual_seed(8), empty=0.4).cpu()
    values, meta = s24.compress_24(w, impl="reference")
    packed, meta_reordered = s24.to_cutlass_layout(values, meta)
    assert torch.equal(conv.sparse_semi_structured_to_dense_cutlass(packed, meta_reordered), w)
    v2, m2 = s24.from_cutlass_layout(packed, meta_reordered)
    assert_bitwise(v2, values)
    assert torch.equal(m2, meta)


def test_cutlass_layout_shape_error():
    values, meta = s24.compress_24(torch.zeros(16, 64, dtype=torch.float16))
    with pytest.raises(ValueError, match="out_features % 32"):
        s24.to_cutlass_layout(values, meta)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_torch_semi_structured_needs_cuda():
    values, meta = s24.compress_24(torch.zeros(32, 64, dtype=torch.float16))
    with pytest.raises(RuntimeError, match="need a CUDA device"):
        s24.to_torch_semi_structured(values, meta)
    assert s24.semi_structured_reason("cpu") is not None


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cutlass", "cusparselt", "auto"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_semi_structured_round_trip_gpu(backend, dtype):
    if s24.semi_structured_reason("cuda") is not None:
        pytest.skip(s24.semi_structured_reason("cuda"))
    if backend == "cusparselt" and not torch.backends.cusparselt.is_available():
        pytest.skip("no cuSPARSELt in this torch build")
    gen = torch.Generator().manual_seed(9)
    w = random_24(128, 256, dtype, gen, empty=0.2).cuda()
    values, meta = s24.compress_24(w, impl="reference")
    t = s24.to_torch_semi_structured(values, meta, backend=backend)
    assert torch.equal(t.to_dense(), w)
    v2, m2 = s24.from_torch_semi_structured(t)
    assert torch.equal(s24.decompress_24_reference(v2, m2), w)
    if backend == "cutlass":
        assert torch.equal(m2, meta)
        # built by PyTorch from the dense matrix: its own positions for partial groups, the same weight
        t_torch = torch.sparse.SparseSemiStructuredTensorCUTLASS.from_dense(w)
        v3, m3 = s24.from_torch_semi_structured(t_torch)
        assert torch.equal(s24.decompress_24_reference(v3, m3), w)
    x = torch.randn(64, 256, generator=gen).to(dtype).cuda()
    tol = 2e-3 if dtype == torch.float16 else 1.6e-2  # one output ulp: accumulation order differs
    torch.testing.assert_close(
        torch.nn.functional.linear(x, t), torch.nn.functional.linear(x, w), rtol=tol, atol=tol
    )


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_format_kernels_compiled_gpu(dtype):
    if _dispatch.interpreter_enabled():
        pytest.skip("set POLYSPARSE_TEST_GPU=1 to compile the kernels instead of interpreting them")
    gen = torch.Generator().manual_seed(10)
    w = random_24(1000, 4096, dtype, gen).cuda()  # large: many programs, partial last tiles
    (v_t, m_t), (v_r, m_r) = both_impls(s24.compress_24, w)
    assert_bitwise(v_t, v_r)
    assert torch.equal(m_t, m_r)
    assert torch.equal(s24.decompress_24(v_t, m_t, impl="triton"), w)
    dense = torch.randn(1000, 4096, generator=gen).to(dtype).cuda()
    check_prune(dense, torch.rand(4096, generator=gen).cuda())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_strided_inputs(dtype):
    gen = torch.Generator().manual_seed(11)
    w = random_24(24, 40, dtype, gen)
    w_cm = w.t().contiguous().t()  # same matrix, column-major storage
    assert not w_cm.is_contiguous()
    (v_t, m_t), (v_r, m_r) = both_impls(s24.compress_24, w_cm)
    assert_bitwise(v_t, v_r)
    assert torch.equal(m_t, m_r)
    out = torch.full((40, 24), float("nan"), dtype=dtype, device=DEVICE).t()  # a transposed output buffer
    s24.decompress_24(v_t.t().contiguous().t(), m_t, out=out, impl="triton")
    assert torch.equal(out, w)
    (v_p, m_p), (v_q, m_q) = both_impls(
        s24.prune_and_compress_24, torch.randn(24, 40, generator=gen).to(DEVICE).t().contiguous().t(), None
    )
    assert_bitwise(v_p, v_q)
    assert torch.equal(m_p, m_q)


def test_padded_meta_storage_and_alignment_check():
    meta = torch.arange(3 * 12, dtype=torch.int16).reshape(3, 12)  # K = 192: 12 words per row
    padded = s24.padded_meta_storage(meta)
    assert padded.shape == (3, 16) and torch.equal(padded[:, :12], meta) and not padded[:, 12:].any()
    assert not s24.is_aligned_meta(meta)  # rows start 24 bytes apart
    assert s24.is_aligned_meta(padded[:, :12])  # rows 32 bytes apart, padding inside the storage
    # Rows 16-byte aligned, but the last row's padding lies past the end of the storage: not aligned.
    flat = torch.zeros(2 * 16 + 12, dtype=torch.int16)
    assert not s24.is_aligned_meta(flat.as_strided((3, 12), (16, 1)))
    view = s24.aligned_meta(meta)
    assert torch.equal(view, meta) and view.stride(0) == 16 and s24.aligned_meta(view) is view
