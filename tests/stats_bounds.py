"""Acceptance bounds for the tests whose outcome depends on chance (netem's unseedable generator,
the relay's draws shared with whatever else crosses the link), each with a stated false-failure
rate.

Every statistical check in the suite accepts an outcome unless it lies in a tail of total
probability at most `ALPHA` = 1e-8 under the model the test states. A CI run makes fewer than
40 such checks (about 7 per engine in tests/conformance/ and 6 in tests/test_netem_kernel.py,
under 25 today), so by the union bound a run fails by chance with probability below
40 * 1e-8 = 4e-7, under one in a million.

Tails are computed exactly (sums of the binomial distribution in log space, no normal
approximation), so the bounds hold for small counts and skewed rates too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

ALPHA = 1e-8  # two-sided false-failure rate of one check (see the module docstring for the run)


def _log_pmf(n: int, p: float, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_cdf(n: int, p: float, k: int) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exact up to float rounding."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return min(1.0, math.fsum(math.exp(_log_pmf(n, p, i)) for i in range(k + 1)))


def binomial_sf(n: int, p: float, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return 1.0 - binomial_cdf(n, p, k - 1) if k <= n * p else binomial_cdf(n, 1.0 - p, n - k)


def binomial_bounds(n: int, p: float, alpha: float = ALPHA) -> tuple[int, int]:
    """The counts [low, high] a Binomial(n, p) count lands in with probability >= 1 - alpha:
    P(X < low) <= alpha/2 and P(X > high) <= alpha/2, each as tight as the integers allow."""
    if n <= 0:
        return 0, 0
    pmf = [math.exp(_log_pmf(n, p, k)) for k in range(n + 1)] if 0.0 < p < 1.0 else [float(k == round(n * p)) for k in range(n + 1)]
    low, below = 0, 0.0
    while low < n and below + pmf[low] <= alpha / 2:
        below += pmf[low]
        low += 1
    high, above = n, 0.0
    while high > 0 and above + pmf[high] <= alpha / 2:
        above += pmf[high]
        high -= 1
    return low, high


def _first(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The least s in [lo, hi] with ok(s), for ok monotone (False then True); hi when none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def geometric_sum_bounds(m: int, r: float, alpha: float = ALPHA) -> tuple[int, int]:
    """Bounds on the sum S of m independent Geometric(r) lengths (support 1, 2, ...; mean 1/r)
    with P(S < low) <= alpha/2 and P(S > high) <= alpha/2.

    S <= s exactly when s Bernoulli(r) trials hold at least m successes, so the tails of S are
    binomial tails: P(S <= s) = P(Binomial(s, r) >= m), P(S > s) = P(Binomial(s, r) <= m - 1)."""
    mean = math.ceil(m / r)
    # low: the greatest s with P(S <= s - 1) <= alpha/2, i.e. one past the last s whose tail is small
    low = _first(m, mean, lambda s: binomial_sf(s, r, m) > alpha / 2)
    top = mean
    while binomial_cdf(top, r, m - 1) > alpha / 2:
        top *= 2
    high = _first(mean, top, lambda s: binomial_cdf(s, r, m - 1) <= alpha / 2)
    return low, high


def dkw_bound(n: int, alpha: float = ALPHA) -> float:
    """Dvoretzky-Kiefer-Wolfowitz (Massart's constant): the Kolmogorov-Smirnov distance between n
    samples and their true CDF exceeds this with probability at most alpha."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))
