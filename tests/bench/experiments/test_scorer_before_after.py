"""The scorer before/after comparison: it loads an earlier scoring.py from its file and reports the largest
log-likelihood difference and whether any prediction changed."""

from pathlib import Path

from polysparse.bench.experiments.scorer_before_after import compare, head_products, load_module
from polysparse.sparsify.tasks import ItemScore

SCORING = Path(__file__).resolve().parents[3] / "sparsify" / "tasks" / "scoring.py"


def fixed(loglikelihoods):
    """A scorer that gives every item the same two-choice scores (label 0)."""
    return lambda model, tokenizer, items: [
        ItemScore(tuple(loglikelihoods), (1, 1), (3, 3), 0) for _ in items
    ]


def test_compare_reports_the_largest_difference_and_changed_predictions():
    same = compare(None, None, [0, 1], {"before": fixed([-1.0, -2.0]), "after": fixed([-1.25, -2.0])})
    assert same["max_abs_loglikelihood_difference"] == 0.25
    assert same["same_acc_predictions"] and same["same_acc_norm_predictions"]
    assert [len(same["runs"][label]) for label in ("before", "after")] == [2, 2]
    flipped = compare(
        None, None, [0], {"before": fixed([-1.0, -2.0]), "after": fixed([-3.0, -2.0])}, rounds=1
    )
    assert not flipped["same_acc_predictions"] and flipped["max_abs_loglikelihood_difference"] == 2.0


def test_an_earlier_scorer_loads_from_its_file():
    module = load_module(str(SCORING), "scoring_copy_for_test")
    assert callable(module.score_items)


def test_head_products_reports_each_row_count_whole_and_in_slabs():
    import torch

    table = head_products(torch.randn(3000, 16), rows=(2, 5), slabs=(1024, 2048), repeats=1)
    assert list(table) == ["2", "5"]
    for rates in table.values():
        assert list(rates) == ["one product", "slabs of 1024", "slabs of 2048"]
        assert all(rate > 0 for rate in rates.values())
