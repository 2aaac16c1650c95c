"""Means with Student-t confidence intervals: the one interval every table and sentence of ablate uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its sample std and its two-sided t-interval.

    Attributes:
        mean: Sample mean (NaN without values).
        std: Sample standard deviation with ddof=1 (NaN with n < 2).
        low: Lower end of the confidence interval (NaN with n < 2: one value gives no interval).
        high: Upper end of the confidence interval (NaN with n < 2).
        n: Number of finite values used.
    """

    mean: float
    std: float
    low: float
    high: float
    n: int

    @property
    def has_ci(self) -> bool:
        """True when the interval exists (n ≥ 2)."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def covers_zero(self) -> bool:
        """True when the interval includes 0 (a difference it cannot tell from none); False without an interval."""
        return self.has_ci and self.low <= 0.0 <= self.high

    @property
    def excludes_zero(self) -> bool:
        """True when the interval exists and lies wholly on one side of 0."""
        return self.has_ci and not self.covers_zero


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-interval ``mean ± t(1 − α/2, n − 1) · sd / √n`` of the finite values (scipy.stats.t).

    Args:
        values: Observations; NaN and infinite values are ignored.
        confidence: Coverage of the interval, 0.95 by default.

    Returns:
        The Interval; ``low``/``high`` are NaN with fewer than 2 values, and equal to the mean when every value is
        the same (scipy gives NaN for a zero scale).
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(x))
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan, 1)
    std, sem = float(np.std(x, ddof=1)), float(stats.sem(x))
    if sem == 0.0:
        return Interval(mean, std, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Interval(mean, std, float(low), float(high), n)
