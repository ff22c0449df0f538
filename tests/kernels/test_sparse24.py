"""The 2:4 format: Triton (through the interpreter on CPU) against the PyTorch reference, exact round trips,
the documented metadata layout and validation errors (the other layouts: ``test_sparse24_convert.py``)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.seeds import stable_seed
from helpers.sparse24_weights import DEVICE, DTYPES, assert_bitwise, random_24
from polysparse.kernels import dispatch
from polysparse.kernels import sparse24 as s24
from polysparse.kernels.topk_mask import nm_mask_reference


def both_impls(fn, *args):
    """Run a format op through Triton (interpreter) and the reference; return both results."""
    return fn(*args, impl="triton"), fn(*args, impl="reference")


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
    before = dispatch.fallback_counts[
        ("compress_24", "dtype torch.float64 (the kernel takes fp16, bf16, fp32)")
    ]
    v, m = s24.compress_24(w)
    assert v.dtype == torch.float64
    assert (
        dispatch.fallback_counts[("compress_24", "dtype torch.float64 (the kernel takes fp16, bf16, fp32)")]
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


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_format_kernels_compiled_gpu(dtype):
    if dispatch.interpreter_enabled():
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


def test_kernel_operands_views_and_copies():
    # K = 192: 12 metadata words per row, so the rows need realigning; values rows of 96 fp16 are aligned.
    values = torch.randn(3, 96, dtype=torch.float16)
    meta = torch.arange(3 * 12, dtype=torch.int16).reshape(3, 12)
    kept, pairs, words = s24.kernel_operands(values, meta)
    assert kept.data_ptr() == values.data_ptr() and pairs.data_ptr() == values.data_ptr()
    assert pairs.dtype == torch.int32 and pairs.shape == (3, 48)
    assert words.dtype == torch.int32 and words.shape == (3, 6) and words.stride(0) % 4 == 0
    assert torch.equal(words.view(torch.int16), meta)
    aligned = s24.aligned_meta(meta)
    assert s24.kernel_operands(values, aligned)[2].data_ptr() == aligned.data_ptr()  # no second copy
    # A values view that starts 2 elements into its storage is copied, with the same numbers.
    storage = torch.randn(3 * 96 + 2, dtype=torch.float16)
    odd = storage[2:].view(3, 96)
    kept, pairs, _ = s24.kernel_operands(odd, meta)
    assert kept.data_ptr() != odd.data_ptr() and torch.equal(kept, odd) and kept.storage_offset() == 0
    assert torch.equal(pairs.view(torch.float16), odd)
