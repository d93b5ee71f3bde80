"""One conformance suite for every link engine: what `degrade` asks is what the packets get.

Each test sends a bounded UDP flow across a two-node testbed whose link is served by the engine
under test (`testbed` fixture: userspace here; kernel netem in the VM lane, `pytest -m netem`),
impairs the a-to-b direction through `LinkDegrade` (the drill's own path, confirmed) and checks
the flow against the model with statistical bounds, not wall-clock timings of the machine:
median added delay within 1 ms up to 1000 packets/s, loss inside the 99 % binomial interval,
rate within 5 %, the jitter distribution's shape (Kolmogorov-Smirnov distance), Gilbert-Elliott
burst lengths, duplication and reordering counts.
"""

from __future__ import annotations

import math
import statistics
from statistics import NormalDist

import pytest
from conformance_testbed import LinkTestbed
from conformance_traffic import UDP_IP_ETH_BYTES, Flow

pytestmark = pytest.mark.netns

Z99 = 2.576  # two-sided 99 %


def binomial_interval(n: int, p: float) -> tuple[float, float]:
    """The 99 % interval of a Binomial(n, p) count (normal approximation, continuity-corrected)."""
    spread = Z99 * math.sqrt(n * p * (1 - p)) + 0.5
    return n * p - spread, n * p + spread


def baseline_median_s(bed: LinkTestbed) -> float:
    return statistics.median(bed.flow(count=300, rate_pps=1000, drain_s=0.3).delays_s())


def ks_distance(samples: list[float], cdf: object) -> float:
    """Kolmogorov-Smirnov distance between the samples and a distribution's CDF."""
    ordered = sorted(samples)
    n = len(ordered)
    worst = 0.0
    for i, x in enumerate(ordered):
        f = cdf(x)  # type: ignore[operator]
        worst = max(worst, abs(f - i / n), abs((i + 1) / n - f))
    return worst


@pytest.mark.parametrize("rate_pps", [100, 1000])
def test_median_added_delay_within_1_ms(testbed: LinkTestbed, rate_pps: int) -> None:
    base_s = baseline_median_s(testbed)
    testbed.impair(delay="20ms")
    flow = testbed.flow(count=2 * rate_pps, rate_pps=rate_pps)
    delays = flow.delays_s()
    assert len(delays) >= 0.99 * len(flow.sent_ns)
    added_s = statistics.median(delays) - base_s
    assert abs(added_s - 0.020) <= 0.001, f"median added delay {added_s * 1e3:.3f} ms at {rate_pps} packets/s"


def test_loss_rate_inside_the_99_percent_binomial_interval(testbed: LinkTestbed) -> None:
    testbed.impair(loss="10%")
    flow = testbed.flow(count=4000, rate_pps=1000)
    low, high = binomial_interval(len(flow.sent_ns), 0.10)
    lost = sum(flow.lost())
    assert low <= lost <= high, f"{lost} lost of {len(flow.sent_ns)}; 99 % interval {low:.0f}..{high:.0f}"


def test_corruption_shows_as_checksum_loss(testbed: LinkTestbed) -> None:
    testbed.impair(corrupt="10%")
    flow = testbed.flow(count=3000, rate_pps=1000)
    low, high = binomial_interval(len(flow.sent_ns), 0.10)
    assert low <= sum(flow.lost()) <= high  # a flipped bit fails the IP or UDP checksum at b


def test_rate_limit_within_5_percent(testbed: LinkTestbed) -> None:
    rate_bps = 2_000_000
    payload = 1000
    testbed.impair(rate="2mbit")
    wire_bits = (payload + UDP_IP_ETH_BYTES) * 8
    offered_pps = 1.5 * rate_bps / wire_bits  # 50 % more than the limit: the queue stays busy
    flow = testbed.flow(count=int(offered_pps * 4), rate_pps=offered_pps, payload_bytes=payload)
    arrivals = sorted(at for _, at in flow.arrivals)
    # Skip the first second: the bucket's initial burst is not the sustained rate.
    start = arrivals[0] + 1_000_000_000
    steady = [at for at in arrivals if at >= start]
    measured_bps = (len(steady) - 1) * wire_bits / ((steady[-1] - steady[0]) / 1e9)
    assert abs(measured_bps / rate_bps - 1) <= 0.05, f"{measured_bps / 1e6:.3f} Mbit/s for 2 Mbit/s"


@pytest.mark.parametrize(
    "distribution",
    ["uniform", "normal"],
)
def test_jitter_distribution_shape(testbed: LinkTestbed, distribution: str) -> None:
    delay_s, jitter_s = 0.040, 0.010
    base_s = baseline_median_s(testbed)
    testbed.impair(delay="40ms", jitter="10ms", distribution=distribution)
    added = [d - base_s for d in testbed.flow(count=2000, rate_pps=500).delays_s()]
    if distribution == "uniform":

        def cdf(x: float) -> float:
            return min(1.0, max(0.0, (x - (delay_s - jitter_s)) / (2 * jitter_s)))

    else:
        cdf = NormalDist(delay_s, jitter_s).cdf
    # 1.63 / sqrt(n) is the 99 % critical value for n ~ 2000 (0.036); a little more allows for
    # the ~0.1 ms the path itself adds and varies.
    assert ks_distance(added, cdf) <= 0.06
    # The other shape must not fit as well: the check can tell them apart.
    other = NormalDist(delay_s, jitter_s).cdf if distribution == "uniform" else (
        lambda x: min(1.0, max(0.0, (x - (delay_s - jitter_s)) / (2 * jitter_s)))
    )  # fmt: skip
    assert ks_distance(added, other) > ks_distance(added, cdf)


def _bursts(flow: Flow) -> list[int]:
    runs, length = [], 0
    for lost in flow.lost():
        if lost:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    if length:
        runs.append(length)
    return runs


def test_gilbert_elliott_mean_burst_is_one_over_r(testbed: LinkTestbed) -> None:
    r = 0.25
    testbed.impair(loss_bursts={"p": "2%", "r": "25%"})
    bursts = _bursts(testbed.flow(count=6000, rate_pps=1000))
    assert len(bursts) >= 30, bursts
    mean = statistics.fmean(bursts)
    # Burst lengths are geometric (mean 1/r, sd sqrt(1-r)/r): 99 % bound on their mean.
    se = math.sqrt(1 - r) / r / math.sqrt(len(bursts))
    assert abs(mean - 1 / r) <= Z99 * se, f"mean burst {mean:.2f} over {len(bursts)} bursts, expected {1 / r:g}"


def test_duplication_count(testbed: LinkTestbed) -> None:
    testbed.impair(duplicate="10%")
    flow = testbed.flow(count=3000, rate_pps=1000)
    low, high = binomial_interval(len(flow.sent_ns), 0.10)
    assert low <= flow.duplicates() <= high


def test_reordering_count(testbed: LinkTestbed) -> None:
    testbed.impair(delay="10ms", reorder="25%")
    flow = testbed.flow(count=3000, rate_pps=1000)
    skipped = sum(1 for d in flow.delays_s() if d < 0.005)  # sent at once, without the delay
    low, high = binomial_interval(len(flow.sent_ns), 0.25)
    assert low <= skipped <= high
    assert flow.out_of_order() > 0  # they did overtake the delayed packets
