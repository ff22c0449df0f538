import pytest
import torch

from polysparse.sparsify.stats import GRAM_PANEL, LayerStatistics, gram


def test_padded_batch_gives_the_statistics_of_its_unpadded_sequences():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 6, generator=g), torch.randn(4, 6, generator=g)
    padded = torch.zeros(2, 7, 6)
    padded[0], padded[1, :4] = a, b
    padded[1, 4:] = 1e3  # garbage where padding sits: must not leak in
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0], mask[1, :4] = True, True

    batched = LayerStatistics(6, want_norms=True, want_hessian=True)
    batched.add(padded, mask)
    separate = LayerStatistics(6, want_norms=True, want_hessian=True)
    separate.add(a)
    separate.add(b)
    assert batched.ntokens == separate.ntokens == 11
    torch.testing.assert_close(batched.sq_norms, separate.sq_norms)
    torch.testing.assert_close(batched.xtx, separate.xtx)
    x = torch.cat([a, b])
    torch.testing.assert_close(batched.sq_norms, (x**2).sum(0))
    torch.testing.assert_close(batched.hessian(), 2 / 11 * x.t() @ x)


def test_low_precision_inputs_accumulate_in_float32_without_overflow():
    x = torch.full((64, 4), 60000.0, dtype=torch.float16)  # x*x overflows float16
    stats = LayerStatistics(4, want_norms=True, want_hessian=True)
    stats.add(x)
    assert stats.sq_norms.dtype == torch.float32
    assert torch.isfinite(stats.sq_norms).all() and torch.isfinite(stats.xtx).all()
    torch.testing.assert_close(stats.sq_norms, torch.full((4,), 64 * 60000.0**2))


def test_merge_equals_accumulating_everything_in_one():
    g = torch.Generator().manual_seed(1)
    parts = [torch.randn(5, 3, generator=g) for _ in range(4)]
    whole = LayerStatistics(3, want_norms=True, want_hessian=True)
    left = LayerStatistics(3, want_norms=True, want_hessian=True)
    right = LayerStatistics(3, want_norms=True, want_hessian=True)
    for i, p in enumerate(parts):
        whole.add(p)
        (left if i % 2 else right).add(p)
    merged = left.merge_(right)
    assert merged.ntokens == whole.ntokens
    torch.testing.assert_close(merged.xtx, whole.xtx)
    torch.testing.assert_close(merged.sq_norms, whole.sq_norms)


def test_layers_fed_the_same_tensor_share_its_sums_bitwise():
    """q, k and v (and gate and up) see one tensor: its sums are computed once, with identical results."""
    g = torch.Generator().manual_seed(7)
    batches = [torch.randn(2, 9, 16, generator=g) for _ in range(3)]
    masks = [torch.rand(2, 9, generator=g) > 0.2 for _ in range(3)]
    alone = [LayerStatistics(16, want_norms=True, want_hessian=True) for _ in range(3)]
    together = [LayerStatistics(16, want_norms=True, want_hessian=True) for _ in range(3)]
    for x, mask in zip(batches, masks):
        shared: dict = {}
        for a, b in zip(alone, together):
            a.add(x, mask)
            b.add(x, mask, shared=shared)
        assert len(shared) == 1
    for a, b in zip(alone, together):
        assert torch.equal(a.xtx, b.xtx) and torch.equal(a.sq_norms, b.sq_norms)
        assert a.ntokens == b.ntokens
    assert together[0].xtx is not together[1].xtx  # separate accumulators, not aliases
    other = LayerStatistics(16, want_hessian=True)
    shared = {}
    together[0].add(batches[0], shared=shared)
    other.add(batches[0].clone(), shared=shared)  # equal values, another tensor: computed again
    assert len(shared) == 2


@pytest.mark.parametrize("features", [7, 128, 129, 300, 513])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_equals_the_full_product_and_is_mirrored(features, dtype):
    x = torch.randn(97, features, dtype=dtype)
    got = gram(x)
    want = x.t() @ x
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * features)
    for start in range(0, features, GRAM_PANEL):  # below the diagonal panels: the mirror of above, exactly
        stop = min(start + GRAM_PANEL, features)
        assert torch.equal(got[stop:, start:stop], got[start:stop, stop:].t())
