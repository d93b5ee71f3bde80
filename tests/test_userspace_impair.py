"""The relay's impairment model, without a kernel: seeded, so every figure here is exact for its
seed and the statistics are checked against netem's definitions with generous bounds."""

from __future__ import annotations

import random
import statistics

import pytest

from drills.userspace import select
from drills.userspace.impair import Direction, GilbertElliott, Impairments, standard_deviate
from drills.userspace.tap import link_changes

FRAME = bytes(range(14)) + b"x" * 86  # a 100-byte frame: Ethernet header and payload


def run(params: Impairments, count: int, gap_s: float = 0.001, seed: int = 1) -> tuple[Direction, list[tuple[float, bytes]]]:
    """Feed `count` frames `gap_s` apart; return the model and (instant, frame) of every departure."""
    d = Direction(params, random.Random(seed))
    out: list[tuple[float, bytes]] = []
    now = 0.0

    def drain(until: float | None) -> None:
        nonlocal now
        while (t := d.next_due(now)) is not None and (until is None or t < until):
            now = max(now, t)
            out.extend((now, f) for f in d.due(now))

    for i in range(count):
        drain(i * gap_s)  # departures between arrivals leave at their own instant, as in the relay
        now = i * gap_s
        d.arrive(FRAME[:-4] + i.to_bytes(4, "big"), now)
        out.extend((now, f) for f in d.due(now))
    drain(None)
    return d, out


def seq(frame: bytes) -> int:
    return int.from_bytes(frame[-4:], "big")


def test_no_impairment_is_a_wire() -> None:
    d, out = run(Impairments(), 100)
    assert [seq(f) for _, f in out] == list(range(100))
    assert [t for t, _ in out] == [i * 0.001 for i in range(100)]
    assert d.counters.received == 100 and d.counters.lost == 0


def test_delay_is_exact_without_jitter() -> None:
    _, out = run(Impairments(delay_s=0.05), 10)
    assert [round(t - i * 0.001, 9) for i, (t, _) in enumerate(out)] == [0.05] * 10


def test_random_loss_rate() -> None:
    d, out = run(Impairments(loss_pct=10.0), 20_000)
    assert 0.09 < d.counters.lost / 20_000 < 0.11
    assert len(out) == 20_000 - d.counters.lost


def test_gilbert_elliott_bursts_average_one_over_r() -> None:
    d, out = run(Impairments(loss_bursts=GilbertElliott(p_pct=2.0, r_pct=25.0)), 50_000)
    got = {seq(f) for _, f in out}
    bursts, length = [], 0
    for i in range(50_000):
        if i not in got:
            length += 1
        elif length:
            bursts.append(length)
            length = 0
    assert 3.6 < statistics.fmean(bursts) < 4.4  # 1 / r = 4
    # Stationary loss: p / (p + r) in the bad state, which loses everything.
    assert 0.06 < d.counters.lost / 50_000 < 0.09


def test_duplicates_and_reordering() -> None:
    d, out = run(Impairments(duplicate_pct=10.0), 10_000)
    assert len(out) == 10_000 + d.counters.duplicated and 900 < d.counters.duplicated < 1100
    d, out = run(Impairments(delay_s=0.01, reorder_pct=25.0), 10_000)
    fast = sum(1 for (t, f) in out if t - seq(f) * 0.001 < 0.005)
    assert fast == d.counters.reordered and 2300 < fast < 2700
    order = [seq(f) for _, f in out]
    assert order != sorted(order)


def test_corruption_flips_one_bit_after_the_ethernet_header() -> None:
    d, out = run(Impairments(corrupt_pct=100.0), 50)
    for _, frame in out:
        original = FRAME[:-4] + seq(frame).to_bytes(4, "big") if frame[-4:] == FRAME[-4:] else None
        assert frame[:14] == FRAME[:14]
        assert original is None or frame != original
    assert d.counters.corrupted == 50


@pytest.mark.parametrize("distribution", [None, "uniform", "normal", "pareto", "paretonormal"])
def test_jitter_distributions_have_the_delay_as_centre_and_jitter_as_spread(distribution: str | None) -> None:
    rng = random.Random(3)
    values = [standard_deviate(distribution, rng.random(), rng) for _ in range(40_000)]
    assert abs(statistics.fmean(values)) < 0.05
    if distribution in (None, "uniform"):
        assert min(values) >= -1 and max(values) <= 1
    else:
        assert 0.85 < statistics.pstdev(values) < 1.15
    if distribution == "pareto":
        assert statistics.median(values) < 0  # right-skewed: a long tail of late packets


def test_correlation_makes_successive_delays_alike() -> None:
    def lag1(correlation: float) -> float:
        _, out = run(Impairments(delay_s=0.05, jitter_s=0.01, correlation_pct=correlation), 5000, gap_s=0.1)
        delays = [t - seq(f) * 0.1 for t, f in sorted(out, key=lambda e: seq(e[1]))]
        return statistics.correlation(delays[:-1], delays[1:])

    assert lag1(0.0) < 0.1 < 0.5 < lag1(75.0)


def test_rate_limit_serialises_and_tail_drops() -> None:
    # 1 Mbit/s, 100-byte frames offered at 2000/s (1.6 Mbit/s): 1250 frames/s get through.
    d, out = run(Impairments(rate_bps=1_000_000), 4000, gap_s=0.0005)
    steady = [t for t, _ in out if t >= 0.5]
    rate = (len(steady) - 1) * 100 * 8 / (steady[-1] - steady[0])
    assert abs(rate / 1_000_000 - 1) < 0.02
    assert d.counters.queue_drops > 0


def test_new_parameters_apply_to_the_next_frame() -> None:
    d = Direction(Impairments(delay_s=0.1), random.Random(1))
    d.arrive(FRAME, 0.0)
    d.set(Impairments(), 0.0)
    d.arrive(FRAME, 0.001)
    assert d.due(0.001) == [FRAME] and d.next_due(0.001) == 0.1  # the first keeps its schedule


def test_wire_round_trip_and_refusals() -> None:
    params = Impairments(delay_s=0.3, loss_bursts=GilbertElliott(1, 20), rate_bps=5_000_000, distribution="normal")
    assert Impairments.from_wire(params.to_wire()) == params
    with pytest.raises(ValueError, match="unknown parameters"):
        Impairments.from_wire({"delay": 1})
    with pytest.raises(ValueError, match="distribution"):
        Impairments.from_wire({"distribution": "cauchy"})


def test_link_events_are_parsed_from_rtnetlink_messages() -> None:
    import struct

    def newlink(index: int, flags: int) -> bytes:
        body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF)
        return struct.pack("=IHHII", 16 + len(body), 16, 0, 0, 0) + body

    assert link_changes(newlink(3, 0x1) + newlink(4, 0x0)) == [(3, True), (4, False)]


def test_auto_engine_choice() -> None:
    from drills.scenario.resolved import Interface, Link

    end = Interface("a", "e1", None, None, None)
    plain = Link("l", end, end, None)
    degraded = Link("l", end, end, None, degraded_netem=True)
    assert select.choose(plain, has_netem=False) == "kernel"  # never impaired: a veth pair
    assert select.choose(degraded, has_netem=False) == "userspace"
    assert select.choose(degraded, has_netem=True) == "kernel"
    assert select.choose(degraded, has_netem=False, has_tap=False) == "kernel"  # netem's absence is reported
    assert select.choose(Link("l", end, end, None, engine="userspace"), has_netem=True) == "userspace"
    assert select.engines([plain], lambda: (_ for _ in ()).throw(AssertionError("asked"))) == {"l": "kernel"}


def _arp_fates(data_frames_before: int) -> list[bool]:
    """Which of 40 ARP frames get through a 50 % lossy direction (seed 7), after
    `data_frames_before` other frames crossed it."""
    d = Direction(Impairments(loss_pct=50.0), random.Random(7))
    for i in range(data_frames_before):
        d.arrive(FRAME[:-4] + i.to_bytes(4, "big"), 0.0)
    arp = bytes(12) + b"\x08\x06" + b"a" * 28
    fates = []
    for _ in range(40):
        lost_before = d.counters.lost
        d.arrive(arp, 0.0)
        fates.append(d.counters.lost == lost_before)
    return fates


def test_arp_frames_draw_from_their_own_seeded_stream() -> None:
    """Whether a failover's first ARP exchange is lost is fixed by the seed, not by how many
    other frames (IPv6 autoconfiguration, randomly timed by the kernel) crossed first."""
    fates = _arp_fates(0)
    assert _arp_fates(1) == fates
    assert _arp_fates(37) == fates
    assert 0 < sum(fates) < len(fates)  # the stream is random, not "ARP is never lost"
