"""Confidence intervals: Wilson for success rates, Student's t for means over seeds."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from scipy import stats


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Tuple[float, float]:
    r"""Wilson score interval of a binomial proportion (Wilson 1927).

    With :math:`\hat p = k / n` and :math:`z = \Phi^{-1}(1 - \alpha / 2)` (1.96 for 95%)::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike the normal approximation ``p +- z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and does
    not collapse to a point at 0 or n successes. ``trials == 0`` gives the uninformative (0, 1).
    """
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # at 0 or n successes one bound is exactly 0 or 1 (the formula leaves rounding noise there)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value, NaN for none)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean over axis 0 and its two-sided Student's t confidence band.

    For ``n`` samples with sample standard deviation ``s``:
    :math:`\bar x \pm t_{1 - \alpha/2,\, n - 1} \, s / \sqrt n`. With ``n < 2`` the band is NaN
    (one seed says nothing about the spread).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half
