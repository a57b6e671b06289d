"""Confidence intervals checked against hand computations."""
import math

import numpy as np
import pytest

from embodireward.tools.stats import mean_std, t_interval, wilson_interval

Z95 = 1.959963984540054


def test_wilson_interval_matches_the_formula_and_its_edge_cases():
    k, n = 30, 50
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), rel=1e-12)
    assert wilson_interval(k, n) == pytest.approx((0.4618, 0.7239), abs=1e-4)  # textbook value for 30/50
    assert wilson_interval(0, 10) == (0.0, pytest.approx(Z95**2 / (10 + Z95**2)))  # upper bound z^2 / (n + z^2)
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + Z95**2)), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_t_interval_and_mean_std():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [6.0, 10.0]])
    mean, low, high = t_interval(values)
    half = 4.302652729911275 * np.std([1.0, 2.0, 6.0], ddof=1) / math.sqrt(3)  # t_{0.975, 2} = 4.3027
    assert mean.tolist() == [3.0, 10.0]
    assert low[0] == pytest.approx(3.0 - half) and high[0] == pytest.approx(3.0 + half)
    assert low[1] == high[1] == 10.0  # no spread, no band
    _, single_low, _ = t_interval(values[:1])
    assert np.isnan(single_low).all()
    assert mean_std([1.0, 2.0, 6.0]) == (3.0, pytest.approx(math.sqrt(7)))
    assert mean_std([4.0]) == (4.0, 0.0)
