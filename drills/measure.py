"""Recovery metrics from a probe stream and the fault instants (definitions: RFC 6412/6413).

Pure functions over recorded instants: no clock, no sockets, so every figure is unit-tested on
synthetic streams with exactly known answers. A packet is lost when its echo never came or came
later than the forwarding-delay threshold. Every duration carries its accuracy bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drills.records import StreamRecord


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
    tolerated_loss_pct: float = 0.0  # the path's expected random loss (the probe's `tolerated_loss`)

    @property
    def clean(self) -> bool:
        return self.sent > 0 and self.lost <= self.sent * self.tolerated_loss_pct / 100


def lost_flags(record: StreamRecord, late_after_s: float) -> list[bool]:
    """Per sequence number: True when the packet counts as lost."""
    flags = []
    for sequence, sent_at in enumerate(record.sent):
        arrived = record.received.get(sequence)
        flags.append(arrived is None or arrived - sent_at > late_after_s)
    return flags


def timestamp_jitter_s(record: StreamRecord) -> float:
    """p99 of how late the sender sent against its schedule, over the whole run: how well it kept
    time (benchmarks report it); each figure's accuracy uses the packets at its own edges
    (`send_resolution_s`)."""
    if not record.send_lateness_s:
        return 0.0
    ordered = sorted(record.send_lateness_s)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def baseline(
    record: StreamRecord, flags: list[bool], start_s: float, end_s: float, tolerated_loss_pct: float = 0.0
) -> Baseline:
    """Loss before the first fault, after the warm-up: must be zero (or, on a path with random
    loss by design, at most `tolerated_loss_pct`) for a conclusive drill."""
    picked = [lost for sent_at, lost in zip(record.sent, flags, strict=True) if start_s <= sent_at < end_s]
    return Baseline(len(picked), sum(picked), tolerated_loss_pct)


def analyse(
    record: StreamRecord,
    flags: list[bool],
    window: Window,
    sustain_s: float,
    event_uncertainty_s: float = 0.0,
    tolerated_loss_pct: float = 0.0,
) -> EventMetrics:
    """Outage, longest loss period, detection and recovery of `record` around one event.

    Recovery instant: the first packet of the first run of good packets, after the first loss,
    that lasts `sustain_s` (RFC 6413's sustained validation). `event_uncertainty_s` is how long
    the kernel took to confirm the change (the fault took effect somewhere in that span); it is
    part of the accuracy bound. Recovery may come after the window's
    end (a link with no backup recovers only when the fault is lifted): `recovered_during_event`
    says which. No loss in the window means no outage: recovery time 0. On a path with random
    loss by design (`tolerated_loss_pct` > 0) the sustained stretch may hold that share of
    isolated losses: it starts with a delivered packet and loses at most that share."""
    gap_s = 1.0 / record.rate_pps
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
    start: int | None = None
    if lost:
        start = sustained_from(record.sent, flags, lost[0] + 1, sustain_s, tolerated_loss_pct)
        recover = None if start is None else record.sent[start] - window.start_s
        during = start is None or record.sent[start] < window.end_s
    # A stream timed on another host's clock adds its offset's bound (0 on the controller's).
    accuracy_s = send_resolution_s(record, indices, lost, start) + event_uncertainty_s + record.clock_bound_s
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


def send_resolution_s(record: StreamRecord, indices: list[int], lost: list[int], recovery: int | None) -> float:
    """How far the figures of one event may be from the truth because packets sample the path
    only where they were actually sent: the event's own resolution, from the packets at its edges.

    Packet i is due at s_i = s_0 + i x gap and sent at t_i = s_i + l_i (l_i >= 0, its recorded
    lateness; a sender that fell behind sends what is due back to back, in order). A loss period
    lost packets a..b began in (t_(a-1), t_a] and ended in (t_b, t_(b+1)], so the instants
    measured by a and b + 1 (detection, recovery) are within t_a - t_(a-1) <= gap + l_a and
    t_(b+1) - t_b <= gap + l_(b+1) of the truth, and its loss-derived length (b - a + 1) x gap
    within gap + max(l_a, l_(b+1)) of it. So: one gap + the largest lateness among the first
    packet of every loss period, the first packet after it, and the recovery packet. A lateness
    elsewhere in the run (a stall a second later) does not touch this event's figures: the whole
    run's p99, stated before, was both too wide here and not a bound there.

    With no loss, the figure is "no outage", and an outage shorter than the longest interval
    between two consecutive sends in the window could have fallen between them: that interval
    (at least one gap) is the resolution."""
    gap_s = 1.0 / record.rate_pps
    sent, lateness = record.sent, record.send_lateness_s
    if not lost:
        begin = max(0, indices[0] - 1) if indices else 0  # the interval into the window counts too
        end = indices[-1] if indices else 0
        return max([gap_s, *(sent[i + 1] - sent[i] for i in range(begin, end))])
    edges = {recovery} if recovery is not None else set()
    previous = -2
    for i in lost:
        if i != previous + 1:
            edges.add(i)  # first of a loss period
            if previous >= 0:
                edges.add(previous + 1)  # first packet after the one before
        previous = i
    edges.add(previous + 1)
    return gap_s + max((max(0.0, lateness[i]) for i in edges if i < len(lateness)), default=0.0)


def sustained_from(
    sent: list[float], flags: list[bool], begin: int, sustain_s: float, tolerated_loss_pct: float = 0.0
) -> int | None:
    """Index of the first delivered packet at or after `begin` that starts `sustain_s` of
    forwarding losing at most `tolerated_loss_pct` of its packets (none, by default: a run of
    good packets, RFC 6413's sustained validation); None when no such stretch exists."""
    tolerated = tolerated_loss_pct / 100
    end = begin  # the stretch [i, end] runs to the first packet sent sustain_s or more after i
    lost_in = 0  # losses in [i, end)
    for i in range(begin, len(sent)):
        if end < i:
            end, lost_in = i, 0
        while end < len(sent) and sent[end] - sent[i] < sustain_s:
            lost_in += flags[end]
            end += 1
        if end == len(sent):
            return None  # no stretch starting here or later lasts sustain_s
        if not flags[i] and lost_in + flags[end] <= tolerated * (end - i + 1):
            return i
        if end > i:
            lost_in -= flags[i]
    return None


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


# A pair is reachable before the partition when most of its packets arrived (a lossy link
# profile loses some); while the partition holds it is open when it lost no more than this
# much above twice its baseline loss, cut when nothing arrived, partial in between.
PAIR_REACHABLE_MAX_LOSS = 0.5
PAIR_OPEN_EXTRA_LOSS = 0.01


@dataclass(frozen=True)
class PairResult:
    """One ordered (source node, destination node) pair across a partition, measured one way:
    what the partition intended for it against what the pair observed. Durations in seconds."""

    step: str
    source: str
    target: str
    rate_pps: int
    expected_cut: bool
    baseline_sent: int
    baseline_lost: int
    # Sent while the partition surely held: from its confirmation to the lift's issue, less a
    # guard of twice the pair's one-way delay (a packet still on a slow link when the lift
    # takes effect gets through, as it should).
    fault_sent: int
    fault_delivered: int
    time_to_detect_s: float | None  # first lost packet's send instant - partition issued; None: none lost
    detect_accuracy_s: float
    time_to_recover_s: float | None  # after the lift: recovery instant - lift issued; None: never (or never lifted)
    recover_accuracy_s: float
    # After the lift: the send instant of the first packet that got through - lift issued
    # (RFC 6412's first-route instant), 0 when nothing sent after the lift was lost; on a lossy
    # link it comes well before a sustained loss-free run.
    first_delivery_after_lift_s: float | None = None

    @property
    def reachable_in_baseline(self) -> bool:
        return self.baseline_sent > 0 and self.baseline_lost / self.baseline_sent < PAIR_REACHABLE_MAX_LOSS

    @property
    def observed(self) -> str:
        """cut (nothing delivered), open (no more loss than before, give or take), partial, or why
        it cannot say: unreachable (mostly lost before the partition), unknown (nothing sent
        while it held)."""
        if not self.reachable_in_baseline:
            return "unreachable"
        if self.fault_sent == 0:
            return "unknown"
        if self.fault_delivered == 0:
            return "cut"
        baseline_loss = self.baseline_lost / self.baseline_sent
        held_loss = 1.0 - self.fault_delivered / self.fault_sent
        return "open" if held_loss <= 2 * baseline_loss + PAIR_OPEN_EXTRA_LOSS else "partial"

    @property
    def expected(self) -> str:
        return "cut" if self.expected_cut else "open"

    @property
    def matches(self) -> bool | None:
        """True when observed as intended; None when it cannot be judged (an error, never a pass)."""
        if self.observed in ("unreachable", "unknown"):
            return None
        return self.observed == self.expected


def pair_result(
    record: StreamRecord,
    flags: list[bool],
    *,
    step: str,
    source: str,
    target: str,
    expected_cut: bool,
    baseline_span: tuple[float, float],
    applied: Window,
    apply_confirmed_s: float,
    lifted: Window | None,
    lift_confirmed_s: float | None,
    sustain_s: float,
) -> PairResult:
    """Per-pair figures of one partition. `applied` runs from the partition's issue to its lift
    (or the drill's end); `lifted` from the lift's issue onwards, None when never lifted. The
    pair is judged on the packets sent while the partition surely held; detection and recovery
    come from `analyse`, with the kernel's confirmation time in their accuracy."""
    delays = sorted(
        record.received[i] - sent_at
        for i, sent_at in enumerate(record.sent)
        if baseline_span[0] <= sent_at < baseline_span[1] and not flags[i]
    )
    guard_s = max(2 * percentile(delays, 0.99) if delays else 0.0, 2.0 / record.rate_pps)
    # Packets still on a slow link when the partition took effect are lost because of it.
    base = baseline(record, flags, baseline_span[0], baseline_span[1] - guard_s)
    held_until_s = (lifted.start_s if lifted is not None else applied.end_s) - guard_s
    held = [lost for sent_at, lost in zip(record.sent, flags, strict=True) if apply_confirmed_s <= sent_at < held_until_s]
    on_apply = analyse(record, flags, applied, sustain_s, apply_confirmed_s - applied.start_s)
    recover_s: float | None = None
    first_s: float | None = None
    recover_accuracy_s = on_apply.accuracy_s
    if lifted is not None and lift_confirmed_s is not None:
        on_lift = analyse(record, flags, lifted, sustain_s, lift_confirmed_s - lifted.start_s)
        recover_s, recover_accuracy_s = on_lift.time_to_recover_s, on_lift.accuracy_s
        # As for recovery: nothing lost after the lift means traffic passed from the lift on.
        if on_lift.sent and not on_lift.lost:
            first_s = 0.0
        else:
            first_s = next(
                (at - lifted.start_s for i, at in enumerate(record.sent) if at >= lifted.start_s and not flags[i]), None
            )
    return PairResult(
        step=step,
        source=source,
        target=target,
        rate_pps=record.rate_pps,
        expected_cut=expected_cut,
        baseline_sent=base.sent,
        baseline_lost=base.lost,
        fault_sent=len(held),
        fault_delivered=len(held) - sum(held),
        time_to_detect_s=on_apply.time_to_detect_s,
        detect_accuracy_s=on_apply.accuracy_s,
        time_to_recover_s=recover_s,
        recover_accuracy_s=recover_accuracy_s,
        first_delivery_after_lift_s=first_s,
    )
