"""Figures from application-probe samples, and every probe's live health.

Two jobs beside drills.measure (which turns a stream's packets into figures), both pure reads of
the records in drills.records:

1. Recovery metrics from the samples of an application probe (pure functions, like
   `drills.measure` for streams, and reported in the same `EventMetrics`).

A stream derives its outage from lost packets ÷ rate. An application probe takes one sample an
interval, so the outage is derived from *failed samples* instead: it runs from the first failed
sample at or after the event to the first success that starts a sustained run (RFC 6413's
sustained validation), on the send instants the probe recorded.

Accuracy. A sample started at `sent_s` reports on the path over [sent_s, sent_s + latency]
when it succeeds and over [sent_s, sent_s + timeout] when it fails: the timeout is not only a
threshold, it is how long one sample looks, because a TCP-based sample (tcp-connect, http)
retransmits its SYN inside the timeout and a late reply counts as a failure. So:
- the break happened after the last good sample started and before the first failed one
  ended: within [first failure − gap, first failure + timeout];
- the repair happened after the last failed sample started and before the recovery sample
  answered: within [recovery − gap, recovery + latency], latency ≤ timeout;
where `gap` is the spacing of consecutive samples around the event: the interval, or more when
a sample outlasted it (a timeout longer than the interval stretches the spacing during an
outage). Every duration derived from two such instants, or from one and the event instant, is
therefore within ± (gap + timeout), plus the time the kernel took to confirm the event
(`event_uncertainty_s`). For a 1 s interval with a 1 s timeout that is ± 2 s; a short timeout
(a few RTTs) tightens it towards ± 1 interval, which is the floor of any sampling probe.

2. Probe health at a glance (`stream_health`, `app_health`), read from the records the probe
threads are filling. Called by the live view's thread a few times a second. It takes no lock
and changes nothing: the probe threads only append to lists and add dictionary keys, and under
CPython's GIL a length read and an index below it are always consistent. A stream's health looks only at the
tail of its record (the last settled second), so its cost does not grow with the drill's
length; an application probe's counts its samples (a few per second).
"""

from __future__ import annotations

from drills.measure import Baseline, EventMetrics, PhaseStats, Window, percentile, phase_from
from drills.records import ProbeHealth, ProbeRecord, StreamRecord

SETTLE_S = 0.2  # a packet sent less than this ago may still be in flight: not judged yet
WINDOW_S = 1.0  # "the last second"


def baseline_samples(record: ProbeRecord, start_s: float, end_s: float, tolerated_pct: float = 0.0) -> Baseline:
    """Failed samples before the first fault, after the warm-up: none for a conclusive drill, or
    up to `tolerated_pct` of them on a path with random loss by design."""
    picked = [sample.ok for sample in record.samples if start_s <= sample.sent_s < end_s]
    return Baseline(len(picked), picked.count(False), tolerated_pct)


def tolerated_failures(record: ProbeRecord, indices: list[int], tolerated_pct: float) -> set[int]:
    """The failed samples among `indices` a path with random loss by design may have without an
    outage: each failed in isolation (the samples before and after it succeeded), and no more of
    them than `tolerated_pct` of the samples; beyond that share none is tolerated."""
    if tolerated_pct <= 0:
        return set()
    samples = record.samples
    isolated = {
        i for i in indices
        if not samples[i].ok and 0 < i < len(samples) - 1 and samples[i - 1].ok and samples[i + 1].ok
    }  # fmt: skip
    return isolated if len(isolated) <= len(indices) * tolerated_pct / 100 else set()


def _recovery(record: ProbeRecord, after: int, sustain_s: float, tolerated: set[int] | None = None) -> int | None:
    """Index of the first success, after sample `after`, that starts a run of successes lasting
    `sustain_s` (from its first to its last sample's send instant); None if none does. A
    `tolerated` failure does not break a run."""
    samples = record.samples
    tolerated = tolerated or set()
    run_start: int | None = None
    for i in range(after + 1, len(samples)):
        if not samples[i].ok and i not in tolerated:
            run_start = None
            continue
        if run_start is None:
            run_start = i
        if samples[i].sent_s - samples[run_start].sent_s >= sustain_s:
            return run_start
    return None


def _covered_until(record: ProbeRecord, index: int) -> float:
    """Until when sample `index` speaks for the path: the next sample's start (the interval
    past the last sample)."""
    samples = record.samples
    return samples[index + 1].sent_s if index + 1 < len(samples) else samples[index].sent_s + record.interval_s


def analyse_samples(
    record: ProbeRecord, window: Window, sustain_s: float, event_uncertainty_s: float = 0.0, tolerated_pct: float = 0.0
) -> EventMetrics:
    """Outage, longest failure period, detection and recovery of `record` around one event.

    - `sent`, `lost`: samples started in the window, and how many of them failed.
    - `outage_s`: from the first failed sample in the window to the recovery sample, or to the
      first sample started after the window ends if that comes sooner (as a stream counts only
      the packets of its window, so an outage that outlasts its event is not counted twice);
      with no sample after, to the end of what the probe observed (last sample + interval).
    - `max_loss_period_s`: longest run of consecutive failed samples in the window, each
      counting until the next sample started (= run length × interval on schedule).
    - `time_to_detect_s`: first failed sample's start − event; None without failures.
    - `time_to_recover_s`: recovery sample's start − event (it may lie after the window:
      `recovered_during_event` False); None if never; 0 when nothing failed.
    - `accuracy_s`: gap + timeout + `event_uncertainty_s` (see the module docstring).
    On a path with random loss by design (`tolerated_pct` > 0), failures that are tolerated
    (`tolerated_failures`: isolated, within that share of the window's samples) are counted in
    `lost` but start no outage and break no sustained run: one random failure on a satellite
    link is not an outage.
    """
    samples = record.samples
    indices = [i for i, sample in enumerate(samples) if window.start_s <= sample.sent_s < window.end_s]
    every_failure = [i for i in indices if not samples[i].ok]
    tolerated = tolerated_failures(record, indices, tolerated_pct)
    failed = [i for i in every_failure if i not in tolerated]
    longest = 0.0
    run_first = previous = -2
    for i in failed:
        if i != previous + 1:
            run_first = i
        longest = max(longest, _covered_until(record, i) - samples[run_first].sent_s)
        previous = i
    detect: float | None = None
    recover: float | None = 0.0
    outage = 0.0
    during = True
    last_looked = indices[-1] + 1 if indices else 0
    if failed:
        first = failed[0]
        detect = samples[first].sent_s - window.start_s
        found = _recovery(record, first, sustain_s, tolerated)
        recover = None if found is None else samples[found].sent_s - window.start_s
        during = found is None or samples[found].sent_s < window.end_s
        # The outage ends at the recovery sample or at the first sample past the window.
        ends = [i for i in (found, indices[-1] + 1) if i is not None and i < len(samples)]
        end_s = samples[min(ends)].sent_s if ends else samples[-1].sent_s + record.interval_s
        outage = end_s - samples[first].sent_s
        last_looked = max(last_looked, found if found is not None else 0)
    first_looked = max(0, indices[0] - 1) if indices else 0
    gap = record.interval_s
    for i in range(first_looked + 1, min(last_looked, len(samples) - 1) + 1):
        gap = max(gap, samples[i].sent_s - samples[i - 1].sent_s)
    return EventMetrics(
        probe=record.name,
        event=window.label,
        kind=window.kind,
        sent=len(indices),
        lost=len(every_failure),
        outage_s=outage,
        max_loss_period_s=longest,
        time_to_detect_s=detect,
        time_to_recover_s=recover,
        accuracy_s=gap + record.timeout_s + event_uncertainty_s,
        recovered_during_event=during,
    )


def sample_phase_stats(record: ProbeRecord, phase: str, spans: list[tuple[float, float]]) -> PhaseStats:
    """Failures and latency of the samples started inside any of `spans` (drill-clock instants);
    the latency percentiles are over successful samples (RTT, connect time, response or run time)."""
    latencies: list[float] = []
    sent = lost = 0
    for sample in record.samples:
        if not any(start <= sample.sent_s < end for start, end in spans):
            continue
        sent += 1
        if not sample.ok:
            lost += 1
        elif sample.latency_s is not None:
            latencies.append(sample.latency_s)
    return phase_from(phase, sent, lost, latencies)


# --------------------------------------------------------------------------- live health


def stream_health(record: StreamRecord, now_s: float, kind: str = "udp-stream") -> ProbeHealth:
    sent_count = len(record.sent)
    received = record.received
    end_s, start_s = now_s - SETTLE_S, now_s - SETTLE_S - WINDOW_S
    lost = judged = 0
    rtts: list[float] = []
    # Walk back from the newest packet; only the last ~1.2 s are looked at.
    for sequence in range(sent_count - 1, -1, -1):
        sent_at = record.sent[sequence]
        if sent_at >= end_s:
            continue
        if sent_at < start_s:
            break
        judged += 1
        arrived = received.get(sequence)
        if arrived is None:
            lost += 1
        else:
            rtts.append(arrived - sent_at)
    return _health(record.name, kind, sent_count, len(received), judged, lost, rtts)


def app_health(record: ProbeRecord, now_s: float) -> ProbeHealth:
    samples = record.samples
    count = len(samples)
    # A sample is appended once it is answered or timed out, so every one present is settled.
    start_s = now_s - WINDOW_S - max(record.interval_s, record.timeout_s)
    lost = judged = 0
    latencies: list[float] = []
    ok_total = 0
    for index in range(count - 1, -1, -1):
        sample = samples[index]
        ok_total += sample.ok
        if sample.sent_s < start_s:
            continue
        judged += 1
        if not sample.ok:
            lost += 1
        elif sample.latency_s is not None:
            latencies.append(sample.latency_s)
    state_name = record.name
    health = _health(state_name, record.kind, count, ok_total, judged, lost, latencies)
    if record.error is not None:
        return ProbeHealth(state_name, record.kind, count, ok_total, health.loss_last, None, "broken")
    return health


def _health(name: str, kind: str, sent: int, received: int, judged: int, lost: int, rtts: list[float]) -> ProbeHealth:
    if not judged:
        return ProbeHealth(name, kind, sent, received, None, None, "idle")
    state = "down" if lost == judged else ("impaired" if lost else "ok")
    latency = percentile(sorted(rtts), 0.5) if rtts else None
    return ProbeHealth(name, kind, sent, received, lost / judged, latency, state)
