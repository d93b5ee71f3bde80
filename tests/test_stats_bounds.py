"""The chance bounds the statistical tests rely on (tests/stats_bounds.py), against exact
rational arithmetic on small cases and against the tails they promise on the suite's cases."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest
from stats_bounds import ALPHA, binomial_bounds, binomial_cdf, binomial_sf, dkw_bound, geometric_sum_bounds


def exact_cdf(n: int, p: Fraction, k: int) -> Fraction:
    return sum((comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)), Fraction(0))


@pytest.mark.parametrize(("n", "p"), [(10, Fraction(1, 10)), (40, Fraction(1, 4)), (60, Fraction(7, 10))])
def test_cdf_and_sf_match_exact_sums(n: int, p: Fraction) -> None:
    for k in range(n + 1):
        assert binomial_cdf(n, float(p), k) == pytest.approx(float(exact_cdf(n, p, k)), rel=1e-9, abs=1e-300)
        assert binomial_sf(n, float(p), k) == pytest.approx(float(1 - exact_cdf(n, p, k - 1)), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n", "p"), [(4000, 0.1), (3000, 0.1), (3000, 0.25), (400, 0.2), (300, 0.3), (2700, 0.136)])
def test_binomial_bounds_are_the_tightest_with_each_tail_under_half_alpha(n: int, p: float) -> None:
    low, high = binomial_bounds(n, p)
    assert binomial_cdf(n, p, low - 1) <= ALPHA / 2 < binomial_cdf(n, p, low)
    assert binomial_sf(n, p, high + 1) <= ALPHA / 2 < binomial_sf(n, p, high)


def test_the_suite_s_figures() -> None:
    # the figures the tests' comments quote
    assert binomial_bounds(4000, 0.1) == (296, 513)
    assert binomial_bounds(3000, 0.1) == (210, 398)
    assert binomial_bounds(400, 0.2) == (38, 129)
    assert round(dkw_bound(3000), 3) == 0.056


@pytest.mark.parametrize(("m", "r"), [(30, 0.25), (111, 0.25), (60, 0.2)])
def test_geometric_sum_bounds_tails(m: int, r: float) -> None:
    low, high = geometric_sum_bounds(m, r)
    # P(S < low) = P(Binomial(low - 1, r) >= m); P(S > high) = P(Binomial(high, r) <= m - 1)
    assert binomial_sf(low - 1, r, m) <= ALPHA / 2 < binomial_sf(low, r, m)
    assert binomial_cdf(high, r, m - 1) <= ALPHA / 2 < binomial_cdf(high - 1, r, m - 1)
    assert low < m / r < high
