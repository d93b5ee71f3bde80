"""One conformance suite for every link engine: what `degrade` asks is what the packets get.

Each test sends a bounded UDP flow across a two-node testbed whose link is served by the engine
under test (`testbed` fixture: userspace here; kernel netem in the VM lane, `pytest -m netem`),
impairs the a-to-b direction through `LinkDegrade` (the drill's own path, confirmed) and checks
the flow against the model with statistical bounds, not wall-clock timings of the machine:
median added delay, loss, rate within 5 %, the jitter distribution's shape (Kolmogorov-Smirnov
distance), Gilbert-Elliott burst lengths, duplication and reordering counts.

Chance: netem's generator cannot be seeded, and the relay's seeded draws are shared with whatever
else crosses the link, so the counts are random in both engines. Every count is checked against
an exact tail bound of false-failure rate ALPHA = 1e-8 (tests/stats_bounds.py: under 4e-7 for a
whole CI run). Neighbour entries are pinned (tests/neighbours.py) so that ARP, whose requests
cross the impaired direction, cannot lose packets outside the impairment under test; the
receiving socket has room for every packet of a flow and reports its own drops (SO_RXQ_OVFL).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from statistics import NormalDist

import pytest
from conformance_testbed import LinkTestbed
from conformance_traffic import UDP_IP_ETH_BYTES, Flow
from stats_bounds import binomial_bounds, dkw_bound, geometric_sum_bounds

pytestmark = pytest.mark.netns

ETH_BYTES = 14


def no_receiver_loss(bed: LinkTestbed, flow: Flow) -> None:
    """What did not arrive was lost on the link, not at the receiver: the socket dropped nothing,
    and with netem every lost packet is one of netem's own drops (netem may also have dropped a
    packet outside the flow, e.g. an IPv6 router solicitation, hence <=). Deterministic: the
    socket holds 16 MB (> 10,000 small packets, more than any flow here) and ARP is pinned."""
    assert flow.socket_drops == 0, f"the receiving socket dropped {flow.socket_drops}: receiver overrun, not link loss"
    drops = bed.netem_drops()
    lost = sum(flow.lost())
    assert drops is None or lost <= drops, f"{lost} lost but netem dropped {drops}: loss outside netem"


def baseline_median_s(bed: LinkTestbed) -> float:
    return statistics.median(bed.flow(count=300, rate_pps=1000, drain_s=0.3).delays_s())


def baseline_low_s(bed: LinkTestbed) -> float:
    """The unimpaired path's delay as a low decile: a loaded machine can only add delay, so the
    low end of the distribution is the path itself, where the median may carry the load."""
    return statistics.quantiles(bed.flow(count=300, rate_pps=1000, drain_s=0.3).delays_s(), n=10)[0]


def ks_sides(samples: list[float], cdf: Callable[[float], float]) -> tuple[float, float]:
    """The two one-sided Kolmogorov-Smirnov distances between the samples and a distribution's
    CDF: (early, late), how far the samples' CDF rises above the model's (samples smaller than
    the model says) and how far it stays below (samples larger)."""
    ordered = sorted(samples)
    n = len(ordered)
    early = late = 0.0
    for i, x in enumerate(ordered):
        f = cdf(x)
        early, late = max(early, (i + 1) / n - f), max(late, f - i / n)
    return early, late


@pytest.mark.parametrize("rate_pps", [100, 1000])
def test_median_added_delay_never_early(testbed: LinkTestbed, rate_pps: int) -> None:
    base_s = baseline_median_s(testbed)
    testbed.impair(delay="20ms")
    flow = testbed.flow(count=2 * rate_pps, rate_pps=rate_pps)
    delays = flow.delays_s()
    assert flow.socket_drops == 0, flow.socket_drops
    # No loss asked and ARP pinned: nothing is lost but what a relay starved of CPU might drop.
    assert len(delays) >= 0.99 * len(flow.sent_ns), (len(delays), len(flow.sent_ns))
    added_s = statistics.median(delays) - base_s
    # Both engines hold every packet for at least 20 ms, so the median cannot come in early beyond
    # the path's own variation (1 ms). Late is the machine: under software emulation on a loaded
    # host the path's median can move by a few ms between the baseline and this flow, so the
    # upper side allows 5 ms; a delay applied twice or in the wrong unit is still far outside.
    assert -0.001 <= added_s - 0.020 <= 0.005, f"median added delay {added_s * 1e3:.3f} ms at {rate_pps} packets/s"


def test_loss_rate_inside_its_binomial_bounds(testbed: LinkTestbed) -> None:
    testbed.impair(loss="10%")
    flow = testbed.flow(count=4000, rate_pps=1000)
    no_receiver_loss(testbed, flow)
    # Each packet lost independently with p = 0.1: Binomial(4000, 0.1), mean 400, sd 19; the
    # exact 1e-8 bounds are 296..513 (5.5 sd), while a measurement bug such as ARP losing the
    # first second (27 % read in the issue) is far outside.
    low, high = binomial_bounds(len(flow.sent_ns), 0.10)
    lost = sum(flow.lost())
    assert low <= lost <= high, f"{lost} lost of {len(flow.sent_ns)}; bounds {low}..{high} (false failure < 1e-8)"


def test_corruption_shows_as_checksum_loss(testbed: LinkTestbed) -> None:
    payload = 64
    testbed.impair(corrupt="10%")
    flow = testbed.flow(count=3000, rate_pps=1000, payload_bytes=payload)
    assert flow.socket_drops == 0, flow.socket_drops
    # A bit flipped after the Ethernet header fails the IP or UDP checksum at b: the packet is
    # lost. The relay flips only there; netem flips any bit of the frame, and a flip in the
    # Ethernet header (the source MAC, the destination's multicast bit) may still be delivered.
    # So lost ~ Binomial(n, 0.1 * q), q between 1 - 14/106 (every header bit harmless) and 1.
    n = len(flow.sent_ns)
    harmless = ETH_BYTES / (payload + UDP_IP_ETH_BYTES) if testbed.engine == "kernel" else 0.0
    low, high = binomial_bounds(n, 0.10 * (1 - harmless))[0], binomial_bounds(n, 0.10)[1]
    lost = sum(flow.lost())
    assert low <= lost <= high, f"{lost} lost of {n}; bounds {low}..{high} (false failure < 1e-8)"


def test_rate_limit_within_5_percent(testbed: LinkTestbed) -> None:
    rate_bps = 2_000_000
    payload = 1000
    testbed.impair(rate="2mbit")
    wire_bits = (payload + UDP_IP_ETH_BYTES) * 8
    offered_pps = 1.5 * rate_bps / wire_bits  # 50 % more than the limit: the queue stays busy
    flow = testbed.flow(count=int(offered_pps * 4), rate_pps=offered_pps, payload_bytes=payload)
    # Deterministic: a token bucket (tbf, or the relay's) releases packets at the rate exactly;
    # the kernel's arrival timestamps err by the receive path's latency (well under a ms) at the
    # two ends of a window of ~3 s, far inside 5 % (150 ms).
    arrivals = sorted(at for _, at in flow.arrivals)
    # Skip the first second: the bucket's initial burst is not the sustained rate.
    start = arrivals[0] + 1_000_000_000
    steady = [at for at in arrivals if at >= start]
    window_s = (steady[-1] - steady[0]) / 1e9
    measured_bps = (len(steady) - 1) * wire_bits / window_s
    # Never faster than the limit. Not slower either, while the queue has packets: that needs
    # the sender to keep offering more than the limit, which a sender starved of CPU on a loaded
    # machine does not (it is a Python loop); then the bucket can only pass what was offered, so
    # the lower bound is taken against what the sender offered in the same window.
    offered_bps = sum(steady[0] <= at <= steady[-1] for at in flow.sent_ns) * wire_bits / window_s
    floor_bps = min(rate_bps, offered_bps)
    # tbf's bucket holds two frames (12 ms at 2 Mbit/s, qdisc.TBF_BURST_S): when its watchdog
    # timer fires later than that, the tokens of the wait are lost and less than the rate goes
    # out. Under software emulation on a loaded host (the VM lane) timers are that late: 1.72
    # Mbit/s was measured there. So in the VM lane the lower side only says the limiter passes
    # traffic at the rate's order (half); the upper side, the limit's promise, stays at 5 %.
    slack = 0.5 if testbed.engine == "kernel" and os.environ.get("DRILLS_VM_LANE") == "1" else 0.95
    assert measured_bps <= rate_bps * 1.05, f"{measured_bps / 1e6:.3f} Mbit/s for 2 Mbit/s"
    assert measured_bps >= floor_bps * slack, f"{measured_bps / 1e6:.3f} Mbit/s for 2 Mbit/s, {offered_bps / 1e6:.3f} offered"


@pytest.mark.parametrize(
    "distribution",
    ["uniform", "normal"],
)
def test_jitter_distribution_shape(testbed: LinkTestbed, distribution: str) -> None:
    delay_s, jitter_s = 0.040, 0.010
    baseline = testbed.flow(count=300, rate_pps=1000, drain_s=0.3).delays_s()
    base_s = statistics.quantiles(baseline, n=10)[0]  # as baseline_low_s
    testbed.impair(delay="40ms", jitter="10ms", distribution=distribution)
    delays = testbed.flow(count=3000, rate_pps=500).delays_s()
    added = [d - base_s for d in delays]

    def uniform_cdf(x: float) -> float:
        return min(1.0, max(0.0, (x - (delay_s - jitter_s)) / (2 * jitter_s)))

    cdf = uniform_cdf if distribution == "uniform" else NormalDist(delay_s, jitter_s).cdf
    # Chance: by the DKW inequality each one-sided distance to the true CDF exceeds dkw_bound(n)
    # (0.056 for n = 3000) with probability < 1e-8. On top, 0.025 for the path: its variation
    # above the baseline's low decile moves a sample by ~0.5 ms, 0.025 of the uniform's 20 ms width.
    # Load: a link engine starved of CPU (the relay is a process on a shared machine; netem's
    # timers run late under emulation) can only release packets late, never early, and then a
    # whole stretch of them: the late side allows 0.30 more (0.22 was seen with the host's load
    # at 10 on 2 cores, a TCG virtual machine beside the test). Nothing allows the early side
    # more: that is the engine's own behaviour. A delay too short, a jitter ignored or too wide
    # fail the early side or the lower tail below; a delay too long (50 ms: late side 0.5) the
    # late side still.
    bound = dkw_bound(len(added)) + 0.025
    early, late = ks_sides(added, cdf)
    assert early <= bound and late <= bound + 0.30, (early, late, bound)
    # The shapes told apart where lateness cannot blur them: below 29 ms (a ms under delay -
    # jitter for the path's variation) the uniform puts nothing, the normal 13.6 %. A stall
    # holds a stretch whatever each packet's draw, so of the >= 70 % of packets not held (the
    # late allowance) the normal puts Binomial(2100, 0.136) below 29 ms: >= 199 but for a chance
    # under 1e-8.
    # The uniform's count is taken above the path's floor (the baseline's least delay), not
    # its low decile: load during the baseline raises the decile (by 1 ms and more once, in
    # CI), and a packet that then crossed an idle path read as early. Load can only add
    # delay, so the floor holds; the floor of 3000 packets lies below that of 300 by
    # microseconds, far inside the 1 ms margin.
    if distribution == "uniform":
        floor_s = min(baseline)
        too_early = [d - floor_s for d in delays if d - floor_s < delay_s - jitter_s - 0.001]
        assert too_early == [], too_early
    else:
        early_count = sum(a < delay_s - jitter_s - 0.001 for a in added)
        below = NormalDist(delay_s, jitter_s).cdf(delay_s - jitter_s - 0.001)
        assert early_count >= binomial_bounds(int(0.7 * len(added)), below)[0], early_count


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
    flow = testbed.flow(count=6000, rate_pps=1000)
    no_receiver_loss(testbed, flow)
    bursts = _bursts(flow)
    # ~110 bursts expected (a burst starts at 2 % of the ~5,550 packets in the good state);
    # fewer than 30 is a Binomial(5000, 0.02) below 30, probability < 1e-8.
    assert len(bursts) >= 30, bursts
    # The bad state loses every packet and leaves with probability r, so burst lengths are
    # Geometric(r), mean 1/r = 4. Their sum is checked against its exact 1e-8 bounds (a negative
    # binomial's tails are binomial tails). A burst cut by the end of the flow is a shorter one:
    # at most one, within the bounds' slack.
    low, high = geometric_sum_bounds(len(bursts), r)
    total = sum(bursts)
    assert low <= total <= high, f"{total} lost in {len(bursts)} bursts (mean {total / len(bursts):.2f}, expected {1 / r:g}); bounds {low}..{high}"


def test_duplication_count(testbed: LinkTestbed) -> None:
    testbed.impair(duplicate="10%")
    flow = testbed.flow(count=3000, rate_pps=1000)
    no_receiver_loss(testbed, flow)
    # Each packet duplicated independently with p = 0.1: exact 1e-8 bounds 210..398 around 300.
    low, high = binomial_bounds(len(flow.sent_ns), 0.10)
    assert low <= flow.duplicates() <= high, f"{flow.duplicates()} duplicates of {len(flow.sent_ns)}; bounds {low}..{high}"


def test_reordering_count(testbed: LinkTestbed) -> None:
    testbed.impair(delay="50ms", reorder="25%")
    flow = testbed.flow(count=3000, rate_pps=1000)
    assert flow.socket_drops == 0, flow.socket_drops
    # Sent at once, without the delay. Every delayed packet takes >= 50 ms (both engines hold
    # it that long), so only an undelayed one held 25 ms by the path could be misread: a stall
    # the receive path does not have even under emulation (its latency is well under a ms).
    skipped = sum(1 for d in flow.delays_s() if d < 0.025)
    # Each packet sent early independently with p = 0.25: exact 1e-8 bounds 617..888 around 750.
    low, high = binomial_bounds(len(flow.sent_ns), 0.25)
    assert low <= skipped <= high, f"{skipped} early of {len(flow.sent_ns)}; bounds {low}..{high}"
    assert flow.out_of_order() > 0  # they did overtake the delayed packets
