import math
import random

import pytest

from polysparse.sparsify.tasks import Item, TaskResult, compare, paired_bootstrap, standard_error
from polysparse.sparsify.tasks.evaluate import summarise
from polysparse.sparsify.tasks.scoring import ItemScore


def test_standard_error_matches_the_formula():
    values = [1, 0, 1, 1, 0, 1, 0, 1]
    p = 5 / 8
    assert math.isclose(standard_error(values), math.sqrt(p * (1 - p) * 8 / 7 / 8))
    assert math.isnan(standard_error([1]))


def test_bootstrap_covers_a_known_difference():
    """Model a is right on 70% of items, b on 55%, correlated through shared easy items: the 95%
    interval must contain the true 0.15 in about 95% of repeated experiments and exclude 0 mostly."""
    covered = excluded_zero = 0
    trials = 60
    for trial in range(trials):
        rng = random.Random(trial)
        a, b = [], []
        for _ in range(400):
            easy = rng.random() < 0.5
            a.append(int(easy or rng.random() < 0.4))
            b.append(int(easy or rng.random() < 0.1))
        interval = paired_bootstrap(a, b, resamples=500, seed=trial)
        covered += interval.low <= 0.15 <= interval.high
        excluded_zero += interval.excludes_zero
        assert interval.low <= interval.difference <= interval.high
    assert covered >= 0.85 * trials
    assert excluded_zero >= 0.9 * trials


def test_bootstrap_of_identical_models_is_zero_and_checks_pairing():
    same = [1, 0, 1, 1, 0] * 20
    interval = paired_bootstrap(same, same, resamples=200)
    assert interval.difference == interval.low == interval.high == 0 and not interval.excludes_zero
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1, 0], [1])


def test_summary_and_compare():
    items = [Item("de", "c", (" a", " b", " c"), label) for label in (0, 1, 2, 0)]
    scores = [
        ItemScore((-1.0, -2.0, -3.0), (1, 1, 1), (2, 2, 2), 0),  # right
        ItemScore((-1.0, -2.0, -3.0), (1, 1, 1), (2, 2, 2), 1),  # wrong
        ItemScore((-3.0, -2.0, -1.0), (1, 1, 1), (2, 2, 2), 2),  # right
        ItemScore((-2.0, -1.0, -3.0), (1, 1, 1), (4, 1, 2), 0),  # acc wrong, acc_norm right (-0.5 < -1)
    ]
    result = summarise("t", items, scores)
    assert (result.n, result.acc, result.acc_norm, result.chance) == (4, 0.5, 0.75, pytest.approx(1 / 3))
    assert TaskResult.from_dict(result.to_dict()) == result
    interval = compare(result, result, metric="acc_norm")
    assert interval.difference == 0
    other = TaskResult(
        **{
            **result.to_dict(per_item=False),
            "correct": (1,) * 4,
            "correct_norm": (1,) * 4,
            "item_ids": ("x",) * 4,
        }
    )
    with pytest.raises(ValueError, match="same items"):
        compare(result, other)
