"""Accuracy, its standard error, and paired bootstrap intervals of a difference: pure functions of
per-item correctness (lists of 0/1), no model."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return sum(values) / len(values)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample standard deviation (lm-eval's ``mean_stderr``)."""
    n = len(values)
    if n < 2:
        return float("nan")
    m = mean(values)
    variance = sum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(variance / n)


@dataclass(frozen=True)
class Interval:
    """A difference ``a - b`` of mean accuracies and its paired bootstrap percentile interval."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``mean(a) - mean(b)`` over item resamples drawn with replacement.

    ``a`` and ``b`` are the same items scored by two models (position ``i`` is item ``i`` in both), so
    each resample keeps the pairing and the interval reflects only disagreements between the models.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no items to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = len(a)
    deltas = [x - y for x, y in zip(a, b)]
    rng = random.Random(seed)
    draws = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = draws[max(0, math.floor(tail * resamples))]
    high = draws[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    return Interval(mean(deltas), low, high, confidence, resamples, n)
