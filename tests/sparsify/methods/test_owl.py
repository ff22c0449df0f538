"""OWL's pure functions: outlier ratios, per-block sparsities around the target, languages combined."""

import pytest
import torch

from polysparse.sparsify.methods.owl import combine_language_ratios, outlier_ratio, owl_sparsities


def test_owl_sparsities_average_to_the_target_within_bounds():
    g = torch.Generator().manual_seed(0)
    for target, lam in [(0.5, 0.08), (0.7, 0.1), (0.3, 0.02)]:
        ratios = (torch.rand(18, generator=g) * 0.05).tolist()
        sparsities = owl_sparsities(ratios, target, lam)
        assert sum(sparsities) / len(sparsities) == pytest.approx(target, abs=1e-12)
        assert max(sparsities) - min(sparsities) == pytest.approx(2 * lam)
        assert all(target - 2 * lam <= s <= target + 2 * lam for s in sparsities)
        # more outliers, less pruning
        order = sorted(range(18), key=lambda i: ratios[i])
        assert [sparsities[i] for i in order] == sorted(sparsities, reverse=True)
    assert owl_sparsities([0.1, 0.1], 0.5, 0.08) == [0.5, 0.5]


def test_outlier_ratio_counts_scores_above_m_times_the_mean():
    scores = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0, 13.0])]
    assert outlier_ratio(scores, 5.0) == pytest.approx(1 / 8)  # mean 2.5: only 13 > 12.5
    assert outlier_ratio(scores, 6.0) == 0.0


def test_combine_language_ratios_keeps_the_largest_per_block():
    assert combine_language_ratios({"de": [0.1, 0.3, 0.2], "ja": [0.2, 0.1, 0.2]}) == [0.2, 0.3, 0.2]
    assert combine_language_ratios({"de": [0.1, 0.3]}) == [0.1, 0.3]
    with pytest.raises(ValueError, match="different numbers of blocks"):
        combine_language_ratios({"de": [0.1], "ja": [0.1, 0.2]})
