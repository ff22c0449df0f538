"""Top-k mask kernels against their PyTorch references (through TRITON_INTERPRET=1 on CPU).

Every case draws its own inputs (seeded from the case, so a failure reproduces), checks the kernel's mask bit
for bit against the stable-sort reference, and checks invariants that do not depend on the reference:
exactly k pruned per row (N per group), and no pruned score above a kept one.
"""

from __future__ import annotations

import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polysparse.kernels import dispatch
from polysparse.kernels import topk_mask as tm

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
POISON = 0xA5  # neither 0 nor 1: a mask byte the kernel failed to write cannot pass for either value


def _gen(*case) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(case).encode()))


def _weight(rows, cols, dtype, gen, *, ties=False):
    if ties:
        # Few distinct magnitudes (both signs): many exact ties in every row.
        w = torch.randint(-3, 4, (rows, cols), generator=gen).float() / 2
    else:
        w = torch.randn(rows, cols, generator=gen)
    return w.to(dtype)


def _scale(cols, gen, kind):
    if kind is None:
        return None
    if kind == "ties":
        return torch.randint(0, 3, (cols,), generator=gen).float()  # zeros make whole columns tie at 0
    return torch.rand(cols, generator=gen) * 4


def _poisoned_keep(rows, cols):
    keep = torch.empty(rows, cols, dtype=torch.bool)
    keep.view(torch.uint8).fill_(POISON)
    return keep


def _assert_same_mask(got: torch.Tensor, want: torch.Tensor):
    assert got.dtype == torch.bool and got.shape == want.shape
    # Compare bytes: a poisoned (unwritten) byte differs from both 0 and 1.
    assert torch.equal(got.view(torch.uint8), want.to(torch.uint8)), (got != want).nonzero()[:10]


def _assert_unstructured_invariants(weight, scale, keep, k):
    scores = tm.scores_reference(weight, scale)
    assert torch.equal((~keep).sum(dim=1), torch.full((weight.shape[0],), k))
    if 0 < k < weight.shape[1]:
        highest_pruned = scores.masked_fill(keep, float("-inf")).amax(dim=1)
        lowest_kept = scores.masked_fill(~keep, float("inf")).amin(dim=1)
        assert (highest_pruned <= lowest_kept).all()


def _assert_nm_invariants(weight, scale, keep, n, m):
    rows, cols = weight.shape
    groups = ~keep.reshape(rows, cols // m, m)
    assert (groups.sum(dim=2) == n).all()
    scores = tm.scores_reference(weight, scale).reshape(rows, cols // m, m)
    highest_pruned = scores.masked_fill(~groups, float("-inf")).amax(dim=2)
    lowest_kept = scores.masked_fill(groups, float("inf")).amin(dim=2)
    assert (highest_pruned <= lowest_kept).all()


# ----------------------------------------------------------------------------------------------------------
# Unstructured
# ----------------------------------------------------------------------------------------------------------

SHAPES = [(1, 1), (1, 37), (3, 64), (5, 100), (37, 19), (8, 257)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("scale_kind", [None, "rand"])
def test_unstructured_matches_reference(shape, dtype, scale_kind):
    rows, cols = shape
    gen = _gen("unstructured", shape, dtype, scale_kind)
    weight = _weight(rows, cols, dtype, gen)
    scale = _scale(cols, gen, scale_kind)
    k = int(torch.randint(0, cols + 1, (), generator=gen))
    keep = tm.launch_unstructured_mask(weight, scale, k, _poisoned_keep(rows, cols))
    _assert_same_mask(keep, tm.unstructured_mask_reference(weight, scale, k))
    _assert_unstructured_invariants(weight, scale, keep, k)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("scale_kind", [None, "ties"])
def test_unstructured_ties_and_edge_k(dtype, scale_kind):
    rows, cols = 7, 45
    gen = _gen("ties", dtype, scale_kind)
    weight = _weight(rows, cols, dtype, gen, ties=True)
    weight[2] = 1.5  # an all-equal row
    weight[3] = 0.0  # an all-zero row
    scale = _scale(cols, gen, scale_kind)
    for k in (0, 1, 17, cols // 2, cols - 1, cols):
        keep = tm.unstructured_mask(weight, scale, prune_per_row=k, impl="triton")
        _assert_same_mask(keep, tm.unstructured_mask_reference(weight, scale, k))
        _assert_unstructured_invariants(weight, scale, keep, k)
    # The all-equal row prunes its lowest column indices first, as a stable sort does.
    keep = tm.unstructured_mask(weight, None, prune_per_row=10, impl="triton")
    assert keep[2, :10].logical_not().all() and keep[2, 10:].all()


def test_unstructured_special_values():
    x = [1.0, float("nan"), float("inf"), 0.5, float("nan"), -0.0, 0.0, 1.0, -1.0, -2.0, float("-inf"), 3e-39]
    weight = torch.tensor([x, x[::-1]])
    # A negative scale makes scores negative; the order keys must still sort them like torch.sort does.
    scale = torch.tensor([1.0, -1.0, 2.0, -0.0] * 3)
    for s in (None, scale):
        for k in (0, 1, 2, 4, 5, 7, 9, 10, 11, 12):
            keep = tm.unstructured_mask(weight, s, prune_per_row=k, impl="triton")
            _assert_same_mask(keep, tm.unstructured_mask_reference(weight, s, k))
    # NaNs with different payloads all tie (in column order) after +inf, as in torch.sort.
    nans = torch.tensor([0x7FFFFFFF, 0x7FC00000, -4194304, 0x7F800001], dtype=torch.int32).view(torch.float32)
    weight = torch.cat([nans, torch.tensor([1.0, float("inf")])]).reshape(1, -1)
    for k in range(2, 7):
        keep = tm.unstructured_mask(weight, None, prune_per_row=k, impl="triton")
        _assert_same_mask(keep, tm.unstructured_mask_reference(weight, None, k))


@pytest.mark.parametrize("rows, block_m, ties", [(2, 1, True), (5, 4, False), (3, 4, True)])
def test_unstructured_chunked_rows(rows, block_m, ties):
    """Rows longer than one tile: the column-chunk walk, with ties spanning chunks."""
    cols = 41
    gen = _gen("chunked", rows, block_m, ties)
    weight = _weight(rows, cols, torch.float16, gen, ties=ties)
    scale = _scale(cols, gen, "ties" if ties else "rand")
    k = int(torch.randint(1, cols, (), generator=gen))
    keep = tm.launch_unstructured_mask(
        weight, scale, k, _poisoned_keep(rows, cols), chunk_cols=16, block_m=block_m
    )
    _assert_same_mask(keep, tm.unstructured_mask_reference(weight, scale, k))


def test_unstructured_chunked_edge_k_and_zeroing():
    rows, cols = 3, 40
    gen = _gen("chunked-edge")
    weight = _weight(rows, cols, torch.float32, gen, ties=True)
    for k in (0, cols):
        keep = tm.launch_unstructured_mask(weight, None, k, _poisoned_keep(rows, cols), chunk_cols=16)
        _assert_same_mask(keep, tm.unstructured_mask_reference(weight, None, k))
    w = weight.clone()
    poisoned = _poisoned_keep(rows, cols)
    keep = tm.launch_unstructured_mask(w, None, 25, poisoned, zero_pruned=True, chunk_cols=16)
    _assert_same_mask(keep, tm.unstructured_mask_reference(weight, None, 25))
    assert torch.equal(w, weight * keep)


@pytest.mark.parametrize("block_m", [1, 4])
def test_unstructured_gpu_tiling_in_interpreter(block_m):
    """The row tiles a GPU uses (few rows per program, a partial last program)."""
    rows, cols = 11, 96
    gen = _gen("tiling", block_m)
    weight = _weight(rows, cols, torch.bfloat16, gen, ties=True)
    keep = tm.launch_unstructured_mask(weight, None, 40, _poisoned_keep(rows, cols), block_m=block_m)
    _assert_same_mask(keep, tm.unstructured_mask_reference(weight, None, 40))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unstructured_zero_pruned_in_place(dtype):
    rows, cols = 6, 50
    gen = _gen("zero", dtype)
    weight = _weight(rows, cols, dtype, gen)
    scale = _scale(cols, gen, "rand")
    original = weight.clone()
    keep = tm.unstructured_mask(weight, scale, prune_per_row=20, zero_pruned=True, impl="triton")
    _assert_same_mask(keep, tm.unstructured_mask_reference(original, scale, 20))
    assert weight.dtype == dtype
    assert torch.equal(weight, original.masked_fill(~keep, 0))  # kept weights untouched, bit for bit


def test_unstructured_non_contiguous():
    gen = _gen("strided")
    base = torch.randn(40, 9, generator=gen)
    weight = base.t()  # 9 x 40, column stride 9
    scale = torch.rand(80, generator=gen)[::2]  # strided scale
    want = tm.unstructured_mask_reference(weight, scale, 13)
    original = base.clone()
    keep = tm.unstructured_mask(weight, scale, prune_per_row=13, zero_pruned=True, impl="triton")
    _assert_same_mask(keep, want)
    assert torch.equal(base, original.masked_fill(~keep.t(), 0))  # zeroed through the view


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 80),
    dtype=st.sampled_from(DTYPES),
    ties=st.booleans(),
    scale_kind=st.sampled_from([None, "rand", "ties"]),
    data=st.data(),
)
def test_unstructured_hypothesis(rows, cols, dtype, ties, scale_kind, data):
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    weight = _weight(rows, cols, dtype, gen, ties=ties)
    scale = _scale(cols, gen, scale_kind)
    k = data.draw(st.integers(0, cols), label="k")
    keep = tm.launch_unstructured_mask(weight, scale, k, _poisoned_keep(rows, cols))
    _assert_same_mask(keep, tm.unstructured_mask_reference(weight, scale, k))
    _assert_unstructured_invariants(weight, scale, keep, k)


# ----------------------------------------------------------------------------------------------------------
# N:M
# ----------------------------------------------------------------------------------------------------------

NM_CASES = [(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (4, 8), (7, 8), (1, 16), (8, 16), (15, 16), (3, 6)]


@pytest.mark.parametrize("nm", NM_CASES, ids=lambda nm: f"{nm[0]}:{nm[1]}")
@pytest.mark.parametrize("rows", [1, 5, 37])
def test_nm_matches_reference(nm, rows):
    n, m = nm
    gen = _gen("nm", nm, rows)
    dtype = DTYPES[int(torch.randint(0, 3, (), generator=gen))]
    ties = bool(torch.randint(0, 2, (), generator=gen))
    cols = m * int(torch.randint(1, 12, (), generator=gen))
    weight = _weight(rows, cols, dtype, gen, ties=ties)
    scale = _scale(cols, gen, "ties" if ties else "rand") if rows != 5 else None
    keep = tm.launch_nm_mask(weight, scale, n, m, _poisoned_keep(rows, cols))
    _assert_same_mask(keep, tm.nm_mask_reference(weight, scale, n, m))
    _assert_nm_invariants(weight, scale, keep, n, m)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nm_ties_zeroing_and_tiling(dtype):
    rows, cols, n, m = 9, 48, 2, 4
    gen = _gen("nm-ties", dtype)
    weight = _weight(rows, cols, dtype, gen, ties=True)
    weight[4] = -2.0  # an all-equal row: the first n of every group go
    original = weight.clone()
    keep = tm.launch_nm_mask(
        weight, None, n, m, _poisoned_keep(rows, cols), zero_pruned=True, block_m=2, block_g=4
    )
    want = tm.nm_mask_reference(original, None, n, m)
    _assert_same_mask(keep, want)
    assert torch.equal(keep[4].reshape(-1, m), torch.tensor([[False, False, True, True]] * (cols // m)))
    assert torch.equal(weight, original.masked_fill(~want, 0))


def test_nm_special_values_and_strides():
    x = [float("nan"), 1.0, -0.0, 0.0, float("inf"), 2.0, float("nan"), -3.0]
    base = torch.tensor([x, x[::-1], [1.0] * 8, [0.0, -0.0] * 4]).t().contiguous()
    weight = base.t()  # non-contiguous 4 x 8
    for n, m in ((1, 2), (2, 4), (5, 8)):
        keep = tm.nm_mask(weight, None, n=n, m=m, impl="triton")
        _assert_same_mask(keep, tm.nm_mask_reference(weight, None, n, m))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 10),
    m=st.integers(2, 16),
    groups=st.integers(1, 9),
    dtype=st.sampled_from(DTYPES),
    ties=st.booleans(),
    with_scale=st.booleans(),
    data=st.data(),
)
def test_nm_hypothesis(rows, m, groups, dtype, ties, with_scale, data):
    n = data.draw(st.integers(1, m - 1), label="n")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    cols = m * groups
    weight = _weight(rows, cols, dtype, gen, ties=ties)
    scale = _scale(cols, gen, "ties" if ties else "rand") if with_scale else None
    keep = tm.nm_mask(weight, scale, n=n, m=m, impl="triton")
    _assert_same_mask(keep, tm.nm_mask_reference(weight, scale, n, m))
    _assert_nm_invariants(weight, scale, keep, n, m)


# ----------------------------------------------------------------------------------------------------------
# Validation and dispatch
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda w: tm.unstructured_mask(w[0], prune_per_row=1), "2-D weight"),
        (lambda w: tm.unstructured_mask(w, torch.ones(7), prune_per_row=1), "scale has 7 entries"),
        (lambda w: tm.unstructured_mask(w, torch.ones(8, device="meta"), prune_per_row=1), "scale is on"),
        (lambda w: tm.unstructured_mask(w, prune_per_row=-1), "outside"),
        (lambda w: tm.unstructured_mask(w, prune_per_row=9), "outside"),
        (lambda w: tm.unstructured_mask(w, prune_per_row=2.0), "must be an int"),
        (lambda w: tm.unstructured_mask(w, prune_per_row=True), "must be an int"),
        (lambda w: tm.nm_mask(w, n=2, m=2), "0 < N < M"),
        (lambda w: tm.nm_mask(w, n=0, m=4), "0 < N < M"),
        (lambda w: tm.nm_mask(w, n=2, m=3), "not a multiple of M=3"),
        (lambda w: tm.nm_mask(w, n=2.0, m=4), "must be ints"),
    ],
)
def test_validation_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.randn(3, 8))


def test_unsupported_inputs_fall_back_and_are_counted():
    weight = torch.randn(4, 64, dtype=torch.float64)
    before = dispatch.fallback_counts[("unstructured_mask", "weight dtype torch.float64 has no kernel")]
    keep = tm.unstructured_mask(weight, prune_per_row=10)
    assert torch.equal(keep, tm.unstructured_mask_reference(weight, None, 10))
    after = dispatch.fallback_counts[("unstructured_mask", "weight dtype torch.float64 has no kernel")]
    assert after == before + 1
    with pytest.raises(RuntimeError, match="cannot run here"):
        tm.unstructured_mask(weight, prune_per_row=10, impl="triton")
    with pytest.raises(RuntimeError, match="M=32"):
        tm.nm_mask(torch.randn(2, 64), n=16, m=32, impl="triton")
    keep = tm.nm_mask(torch.randn(2, 64), n=16, m=32)  # auto: the reference takes M > 16
    assert (~keep).sum() == 2 * 2 * 16


def test_reference_impl_never_launches(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the kernel was launched")

    monkeypatch.setattr(tm, "launch_unstructured_mask", boom)
    monkeypatch.setattr(tm, "launch_nm_mask", boom)
    weight = torch.randn(3, 8)
    assert (~tm.unstructured_mask(weight, prune_per_row=3, impl="reference")).sum() == 9
    assert (~tm.nm_mask(weight, n=2, m=4, impl="reference")).sum() == 12
    with pytest.raises(AssertionError, match="launched"):
        tm.unstructured_mask(weight, prune_per_row=3, impl="triton")


def test_empty_weight():
    for shape in ((0, 8), (3, 0)):
        weight = torch.randn(shape)
        assert tm.unstructured_mask(weight, prune_per_row=0, impl="triton").shape == shape
    assert tm.nm_mask(torch.randn(0, 8), n=2, m=4, impl="triton").shape == (0, 8)


# ----------------------------------------------------------------------------------------------------------
# Compiled kernels (run with POLYSPARSE_TEST_GPU=1 on a CUDA machine)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cols", [4096, 14336, 16384, 32768, 40000])
def test_gpu_unstructured(dtype, cols):
    gen = torch.Generator(device="cuda").manual_seed(cols)
    weight = (torch.randint(-50, 50, (64, cols), device="cuda", generator=gen) / 8).to(dtype)
    scale = torch.rand(cols, device="cuda", generator=gen)
    for k in (0, cols // 3, cols // 2, cols):
        keep = tm.unstructured_mask(weight, scale, prune_per_row=k, impl="triton")
        _assert_same_mask(keep, tm.unstructured_mask_reference(weight, scale, k))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("nm", [(2, 4), (4, 8), (8, 16), (3, 6)], ids=str)
def test_gpu_nm(dtype, nm):
    n, m = nm
    gen = torch.Generator(device="cuda").manual_seed(m)
    weight = (torch.randint(-50, 50, (300, 48 * 96), device="cuda", generator=gen) / 8).to(dtype)
    scale = torch.rand(weight.shape[1], device="cuda", generator=gen)
    keep = tm.nm_mask(weight, scale, n=n, m=m, impl="triton")
    _assert_same_mask(keep, tm.nm_mask_reference(weight, scale, n, m))
