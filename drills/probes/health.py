"""Probe health at a glance, read from the records the probe threads are filling.

Called by the live view's thread a few times a second. It takes no lock and changes nothing:
the probe threads only append to lists and add dictionary keys, and under CPython's GIL a
length read and an index below it are always consistent. A stream's health looks only at the
tail of its record (the last settled second), so its cost does not grow with the drill's
length; an application probe's counts its samples (a few per second).
"""

from __future__ import annotations

from drills.engine.progress import ProbeHealth
from drills.measure import percentile
from drills.probes.app import ProbeRecord
from drills.probes.udp_stream import StreamRecord

SETTLE_S = 0.2  # a packet sent less than this ago may still be in flight: not judged yet
WINDOW_S = 1.0  # "the last second"


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
