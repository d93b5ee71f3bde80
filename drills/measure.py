"""Recovery metrics from a probe stream and the fault instants (definitions: RFC 6412/6413).

Pure functions over recorded instants: no clock, no sockets, so every figure is unit-tested on
synthetic streams with exactly known answers. A packet is lost when its echo never came or came
later than the forwarding-delay threshold. Every duration carries its accuracy bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drills.probes.udp_stream import StreamRecord


@dataclass(frozen=True)
class Window:
    """A fault event on the drill's clock: `start_s` is when it was applied (confirmed in the
    kernel), `end_s` when the next event happened or the drill ended."""

    label: str
    kind: str  # "apply" | "revert"
    start_s: float
    end_s: float


@dataclass(frozen=True)
class EventMetrics:
    """Recovery figures of one probe for one event. Durations in seconds, each ± `accuracy_s`."""

    probe: str
    event: str
    kind: str
    sent: int
    lost: int
    outage_s: float  # loss-derived: lost packets / offered rate
    max_loss_period_s: float  # longest run of consecutive lost packets
    time_to_detect_s: float | None  # first lost packet's send instant - event instant
    time_to_recover_s: float | None  # recovery instant - event instant; None: never recovered
    accuracy_s: float
    # False: traffic came back only after the next event (e.g. the fault was lifted).
    recovered_during_event: bool = True
    late: int = 0  # answered, but after the forwarding-delay threshold (counted in `lost` too)
    duplicated: int = 0  # extra copies received
    reordered: int = 0  # arrived after a packet sent later

    @property
    def impaired(self) -> int:
        """Lost (late included) + duplicated + reordered packets: an exact count."""
        return self.lost + self.duplicated + self.reordered


@dataclass(frozen=True)
class Baseline:
    sent: int
    lost: int

    @property
    def clean(self) -> bool:
        return self.sent > 0 and self.lost == 0


def lost_flags(record: StreamRecord, late_after_s: float) -> list[bool]:
    """Per sequence number: True when the packet counts as lost."""
    flags = []
    for sequence, sent_at in enumerate(record.sent):
        arrived = record.received.get(sequence)
        flags.append(arrived is None or arrived - sent_at > late_after_s)
    return flags


def timestamp_jitter_s(record: StreamRecord) -> float:
    """p99 of how late the sender sent against its schedule: part of every accuracy bound."""
    if not record.send_lateness_s:
        return 0.0
    ordered = sorted(record.send_lateness_s)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def baseline(record: StreamRecord, flags: list[bool], start_s: float, end_s: float) -> Baseline:
    """Loss before the first fault, after the warm-up: must be zero for a conclusive drill."""
    picked = [lost for sent_at, lost in zip(record.sent, flags, strict=True) if start_s <= sent_at < end_s]
    return Baseline(len(picked), sum(picked))


def analyse(
    record: StreamRecord, flags: list[bool], window: Window, sustain_s: float, event_uncertainty_s: float = 0.0
) -> EventMetrics:
    """Outage, longest loss period, detection and recovery of `record` around one event.

    Recovery instant: the first packet of the first run of good packets, after the first loss,
    that lasts `sustain_s` (RFC 6413's sustained validation). `event_uncertainty_s` is how long
    the kernel took to confirm the change (the fault took effect somewhere in that span); it is
    part of the accuracy bound. Recovery may come after the window's
    end (a link with no backup recovers only when the fault is lifted): `recovered_during_event`
    says which. No loss in the window means no outage: recovery time 0."""
    gap_s = 1.0 / record.rate_pps
    accuracy_s = gap_s + timestamp_jitter_s(record) + event_uncertainty_s
    indices = [i for i, sent_at in enumerate(record.sent) if window.start_s <= sent_at < window.end_s]
    first, last = (indices[0], indices[-1]) if indices else (0, -1)
    lost = [i for i in indices if flags[i]]
    longest = run = 0
    previous = -2
    for i in lost:
        run = run + 1 if i == previous + 1 else 1
        longest = max(longest, run)
        previous = i
    detect = record.sent[lost[0]] - window.start_s if lost else None
    recover: float | None = 0.0
    during = True
    if lost:
        recover = None
        run_start: int | None = None
        for i in range(lost[0] + 1, len(record.sent)):
            if flags[i]:
                run_start = None
                continue
            if run_start is None:
                run_start = i
            if record.sent[i] - record.sent[run_start] >= sustain_s:
                recover = record.sent[run_start] - window.start_s
                during = record.sent[run_start] < window.end_s
                break
    return EventMetrics(
        probe=record.name,
        event=window.label,
        kind=window.kind,
        sent=len(indices),
        lost=len(lost),
        outage_s=len(lost) * gap_s,
        max_loss_period_s=longest * gap_s,
        time_to_detect_s=detect,
        time_to_recover_s=recover,
        accuracy_s=accuracy_s,
        recovered_during_event=during,
        late=sum(1 for i in lost if i in record.received),
        duplicated=sum(1 for i in record.duplicate_seqs if first <= i <= last),
        reordered=sum(1 for i in record.reordered_seqs if first <= i <= last),
    )


@dataclass(frozen=True)
class PhaseStats:
    """Loss and round-trip latency of one probe over one phase of the drill."""

    phase: str  # "baseline" | "fault" | "recovery"
    sent: int
    lost: int
    loss_pct: float
    rtt_p50_s: float | None
    rtt_p95_s: float | None
    rtt_p99_s: float | None


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = math.ceil(fraction * len(ordered) - 1e-9)  # 1-based; the epsilon absorbs float error
    return ordered[min(len(ordered), max(1, rank)) - 1]


def phase_stats(record: StreamRecord, flags: list[bool], phase: str, spans: list[tuple[float, float]]) -> PhaseStats:
    """Statistics over the packets sent inside any of `spans` (instants on the drill clock)."""
    rtts: list[float] = []
    sent = lost = 0
    for sequence, sent_at in enumerate(record.sent):
        if not any(start <= sent_at < end for start, end in spans):
            continue
        sent += 1
        if flags[sequence]:
            lost += 1
        else:
            rtts.append(record.received[sequence] - sent_at)
    return phase_from(phase, sent, lost, rtts)


def phase_from(phase: str, sent: int, lost: int, latencies: list[float]) -> PhaseStats:
    """PhaseStats from counts and the latencies of what was answered (streams and samples alike)."""
    ordered = sorted(latencies)
    return PhaseStats(
        phase=phase,
        sent=sent,
        lost=lost,
        loss_pct=100.0 * lost / sent if sent else 0.0,
        rtt_p50_s=percentile(ordered, 0.50) if ordered else None,
        rtt_p95_s=percentile(ordered, 0.95) if ordered else None,
        rtt_p99_s=percentile(ordered, 0.99) if ordered else None,
    )


AVAILABILITY_WINDOW_S = 1.0  # Δt of the availability windows
AVAILABILITY_LOSS_THRESHOLD = 0.5  # a window losing more than this share is unavailable


@dataclass(frozen=True)
class Availability:
    """Availability in the MEF 10.3 / G.826 style: the drill after the warm-up is cut into
    windows of `window_s`; a window is unavailable when it lost more than `threshold` of its
    packets (or samples), or carried none. The figure is exact in windows, ± `window_s` in time."""

    window_s: float
    threshold: float
    windows: int
    unavailable: int

    @property
    def pct(self) -> float:
        return 100.0 * (self.windows - self.unavailable) / self.windows if self.windows else 0.0


def availability(
    observations: list[tuple[float, bool]],
    start_s: float,
    end_s: float,
    window_s: float = AVAILABILITY_WINDOW_S,
    threshold: float = AVAILABILITY_LOSS_THRESHOLD,
) -> Availability:
    """`observations`: (send instant, lost) per packet or sample. Only whole windows count."""
    count = int((end_s - start_s) // window_s)
    sent = [0] * count
    lost = [0] * count
    for sent_at, bad in observations:
        index = int((sent_at - start_s) // window_s)
        if 0 <= index < count:
            sent[index] += 1
            lost[index] += bad
    unavailable = sum(1 for s, x in zip(sent, lost, strict=True) if s == 0 or x / s > threshold)
    return Availability(window_s, threshold, count, unavailable)
