"""Recovery metrics on synthetic streams with exactly known answers."""

from __future__ import annotations

import random

import pytest

from drills.measure import Window, analyse, baseline, lost_flags, timestamp_jitter_s
from drills.records import StreamRecord

RATE = 1000
GAP = 1.0 / RATE


def stream(total: int, lost: set[int], *, late: set[int] = frozenset(), rtt_s: float = 0.0001) -> StreamRecord:
    """`total` packets sent every ms from t=0; those in `lost` never return, those in `late`
    return after 3 s."""
    record = StreamRecord("p", RATE, 64)
    for i in range(total):
        record.sent.append(i * GAP)
        record.send_lateness_s.append(0.0)
        if i in lost:
            continue
        record.received[i] = i * GAP + (3.0 if i in late else rtt_s)
    return record


def test_clean_stream_has_no_outage() -> None:
    record = stream(5000, set())
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("cut", "apply", 1.0, 4.0), sustain_s=0.5)
    assert (m.lost, m.outage_s, m.max_loss_period_s, m.time_to_detect_s, m.time_to_recover_s) == (
        0,
        0.0,
        0.0,
        None,
        0.0,
    )
    assert m.sent == 3000
    assert m.accuracy_s == pytest.approx(GAP)


def test_outage_of_exactly_two_seconds() -> None:
    # Fault at 1.000 s; packets 1000..2999 lost: 2.000 s outage, detected at once, recovered
    # at 3.000 s (first of a sustained run).
    record = stream(6000, set(range(1000, 3000)))
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("cut", "apply", 1.0, 5.0), sustain_s=1.0)
    assert m.lost == 2000
    assert m.outage_s == pytest.approx(2.0)
    assert m.max_loss_period_s == pytest.approx(2.0)
    assert m.time_to_detect_s == pytest.approx(0.0)
    assert m.time_to_recover_s == pytest.approx(2.0)


def test_late_packets_count_as_lost() -> None:
    record = stream(3000, set(), late={1500, 1501})
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("cut", "apply", 1.0, 2.9), sustain_s=0.1)
    assert m.lost == 2
    assert m.time_to_detect_s == pytest.approx(0.5)
    assert m.time_to_recover_s == pytest.approx(0.502)


def test_flapping_reports_total_and_longest_loss_and_waits_for_a_sustained_run() -> None:
    # Three losses of 50, 200 and 100 ms separated by 300 ms of good traffic; a sustain time of
    # 0.5 s is met only after the last loss.
    lost = set(range(1000, 1050)) | set(range(1350, 1550)) | set(range(1850, 1950))
    record = stream(4000, lost)
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("flap", "apply", 1.0, 3.9), sustain_s=0.5)
    assert m.lost == 350
    assert m.outage_s == pytest.approx(0.35)
    assert m.max_loss_period_s == pytest.approx(0.2)
    assert m.time_to_recover_s == pytest.approx(0.95)


def test_never_recovers() -> None:
    record = stream(3000, set(range(1000, 3000)))
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("cut", "apply", 1.0, 3.0), sustain_s=0.5)
    assert m.time_to_recover_s is None
    assert m.outage_s == pytest.approx(2.0)


def test_outage_at_the_very_start_of_the_window() -> None:
    record = stream(2000, set(range(0, 100)))
    flags = lost_flags(record, 2.0)
    m = analyse(record, flags, Window("cut", "apply", 0.0, 1.5), sustain_s=0.2)
    assert m.time_to_detect_s == pytest.approx(0.0)
    assert m.time_to_recover_s == pytest.approx(0.1)


def test_duplicates_and_reordering_do_not_count_as_loss() -> None:
    record = stream(100, set())
    record.duplicates = 3
    record.reordered = 2
    flags = lost_flags(record, 2.0)
    assert not any(flags)


def test_baseline_is_clean_only_with_traffic_and_no_loss() -> None:
    record = stream(2000, {1500})
    flags = lost_flags(record, 2.0)
    assert baseline(record, flags, 0.0, 1.0).clean
    assert not baseline(record, flags, 1.0, 2.0).clean
    assert not baseline(record, flags, 5.0, 6.0).clean  # no traffic at all: not clean


def test_the_run_p99_of_lateness_is_reported_but_not_an_events_accuracy() -> None:
    record = stream(1000, set())
    record.send_lateness_s = [0.0] * 980 + [0.003] * 20
    assert timestamp_jitter_s(record) == pytest.approx(0.003)
    m = analyse(record, lost_flags(record, 2.0), Window("x", "apply", 0.0, 1.0), sustain_s=0.1)
    assert m.accuracy_s == pytest.approx(GAP)  # every packet left one gap after the one before


def test_accuracy_counts_the_lateness_at_the_edges_of_the_loss_only() -> None:
    record = stream(3000, set(range(1000, 1100)))
    flags = lost_flags(record, 2.0)
    window = Window("cut", "apply", 1.0, 3.0)
    record.send_lateness_s[500] = record.send_lateness_s[2500] = 0.004  # away from the loss
    assert analyse(record, flags, window, sustain_s=0.1).accuracy_s == pytest.approx(GAP)
    record.send_lateness_s[1000] = 0.002  # the first lost packet
    assert analyse(record, flags, window, sustain_s=0.1).accuracy_s == pytest.approx(GAP + 0.002)
    record.send_lateness_s[1100] = 0.003  # the first packet after the loss (the recovery packet)
    assert analyse(record, flags, window, sustain_s=0.1, event_uncertainty_s=0.0005).accuracy_s == pytest.approx(
        GAP + 0.003 + 0.0005
    )


def test_a_stall_in_a_window_with_no_loss_is_its_resolution() -> None:
    # The sender stalled 40 ms at 1.5 s and then caught up: an outage that short could have
    # fallen between two packets unseen.
    record = stream(3000, set())
    for i in range(1500, 1540):
        record.sent[i] = 1.54
        record.send_lateness_s[i] = 1.54 - i * GAP
    m = analyse(record, lost_flags(record, 2.0), Window("x", "revert", 1.0, 3.0), sustain_s=0.1)
    assert m.lost == 0
    assert m.accuracy_s == pytest.approx(0.041)


@pytest.mark.parametrize("seed", range(100))
def test_every_figure_lies_within_its_accuracy_of_the_truth(seed: int) -> None:
    """A sender that is late by small amounts and now and then stalls (catching up back to back,
    as udp_stream's does), a path down over [down_s, up_s): every figure lies within the stated
    accuracy of the true one. Seeded: the same streams every run."""
    rng = random.Random(seed)
    down_s = rng.uniform(1.0, 1.5)
    up_s = down_s + rng.uniform(0.0005, 0.4)
    stalls = [(rng.uniform(0.5, 2.5), rng.uniform(0.0005, 0.02)) for _ in range(rng.randint(0, 30))]
    record = StreamRecord("p", RATE, 64)
    for i in range(3000):
        due = i * GAP
        sent = due + rng.expovariate(1 / 0.0001)
        for at, length in stalls:
            if at <= sent < at + length:
                sent = max(sent, at + length)
        sent = max(sent, record.sent[-1] if record.sent else 0.0)  # in order
        record.sent.append(sent)
        record.send_lateness_s.append(sent - due)
        if not down_s <= sent < up_s:
            record.received[i] = sent + 0.0001
    m = analyse(record, lost_flags(record, 2.0), Window("cut", "apply", down_s, 3.0), sustain_s=0.1)
    if m.lost == 0:  # the outage fell between two packets: shorter than the resolution
        assert up_s - down_s <= m.accuracy_s
        return
    assert m.time_to_detect_s is not None and m.time_to_recover_s is not None
    assert 0 <= m.time_to_detect_s <= m.accuracy_s
    for figure in (m.time_to_recover_s, m.outage_s, m.max_loss_period_s):
        assert abs(figure - (up_s - down_s)) <= m.accuracy_s + 1e-9, (figure, up_s - down_s, m.accuracy_s)


def test_phase_stats_split_loss_and_latency_by_phase() -> None:
    from drills.measure import phase_stats

    record = stream(3000, set(range(1000, 1100)), rtt_s=0.002)
    flags = lost_flags(record, 2.0)
    base = phase_stats(record, flags, "baseline", [(0.0, 1.0)])
    fault = phase_stats(record, flags, "fault", [(1.0, 2.0)])
    assert (base.sent, base.lost, base.loss_pct) == (1000, 0, 0.0)
    assert base.rtt_p50_s == pytest.approx(0.002) and base.rtt_p99_s == pytest.approx(0.002)
    assert (fault.sent, fault.lost) == (1000, 100)
    assert fault.loss_pct == pytest.approx(10.0)
    empty = phase_stats(record, flags, "recovery", [(5.0, 6.0)])
    assert (empty.sent, empty.rtt_p50_s) == (0, None)


def test_percentile_nearest_rank() -> None:
    from drills.measure import percentile

    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0


def test_availability_counts_windows_that_lost_more_than_half() -> None:
    from drills.measure import availability

    # 10 s at 1000 packets/s; seconds 3 and 4 lose everything, second 6 loses 40 % (available).
    record = stream(10_000, set(range(3000, 5000)) | set(range(6000, 6400)))
    flags = lost_flags(record, 2.0)
    result = availability(list(zip(record.sent, flags, strict=True)), 0.0, 10.0)
    assert (result.windows, result.unavailable) == (10, 2)
    assert result.pct == pytest.approx(80.0)
    # A window with no traffic at all cannot be called available.
    assert availability([], 0.0, 3.0).unavailable == 3


def test_impaired_counts_lost_late_duplicated_and_reordered_in_the_window() -> None:
    record = stream(3000, {1500}, late={1600})
    record.duplicate_seqs = [1700, 1700, 100]  # two extra copies inside the window, one before
    record.reordered_seqs = [1800]
    m = analyse(record, lost_flags(record, 2.0), Window("x", "apply", 1.0, 2.0), sustain_s=0.1)
    assert (m.lost, m.late, m.duplicated, m.reordered) == (2, 1, 2, 1)
    assert m.impaired == 5


def test_sustained_stretch_tolerates_the_paths_random_loss() -> None:
    from drills.measure import sustained_from

    sent = [i * 0.01 for i in range(400)]  # 100 packets/s for 4 s
    flags = [False] * 400
    for i in range(50, 60):  # a 100 ms outage
        flags[i] = True
    for i in range(60, 400, 37):  # then isolated random losses, about 2.7 %
        flags[i + 5] = True
    strict = sustained_from(sent, flags, 60, 1.0)
    tolerant = sustained_from(sent, flags, 60, 1.0, tolerated_loss_pct=3.0)
    assert strict is None  # no loss-free second follows: "never recovered"
    assert tolerant == 60  # the first delivered packet after the outage


def test_tolerated_loss_keeps_a_lossy_baseline_clean_up_to_its_share() -> None:
    from drills.measure import Baseline

    assert not Baseline(1000, 3).clean
    assert Baseline(1000, 3, tolerated_loss_pct=0.5).clean
    assert not Baseline(1000, 6, tolerated_loss_pct=0.5).clean
    assert not Baseline(0, 0, tolerated_loss_pct=0.5).clean
