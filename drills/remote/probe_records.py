"""Probe records across hosts: moved in parts, and mapped onto the controller's clock.

A probe on another host fills its record on that host's agent, on the agent's monotonic clock.
At stop the record comes back over the agent's channel, whose frames are bounded
(drills.remote.frames); a long drill's stream holds more than one frame may carry (about 75
bytes a packet once encoded: 1,000 packets/s for 10 minutes is 45 MB). So a record over
`PART_UNITS` packets (or samples) stays on the agent and is fetched in slices that `merge`
puts back together exactly: same lists in the same order, same counts.

`to_controller` maps every instant of a record to the controller's clock
(`controller_instant = agent_instant - offset_s`); durations (round trips, send lateness,
latencies) are differences on one clock and are left as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from drills.errors import BackendError
from drills.records import ProbeRecord, StreamRecord
from drills.scenario import limits

PART_UNITS = 50_000
"""Packets (a stream) or samples (an application probe) per part: a stream's part encodes to
about 4 MB, an application probe's (details of at most a few hundred bytes) to about 15 MB,
both well under a frame's 32 MiB."""

MAX_RECORD_UNITS = int(limits.MAX_STREAM_RATE_PPS * limits.MAX_DRILL_DURATION_S)
"""The most packets a stream can send within the scenario's bounds: a larger count in an
agent's answer is refused, not iterated."""

Record = StreamRecord | ProbeRecord


@dataclass(frozen=True)
class RecordParts:
    """What an agent answers to `stop` when the record is too large for one frame: fetch it
    with `part(probe_id, start, per_part)` for start = 0, per_part, ... below `units`, then
    `release(probe_id)`."""

    probe_id: str
    units: int
    per_part: int


def units(record: Record) -> int:
    """How many parts-worth of entries the record holds: its longest list."""
    if isinstance(record, ProbeRecord):
        return len(record.samples)
    return max(len(record.sent), len(record.duplicate_seqs), len(record.reordered_seqs))


def part(record: Record, start: int, count: int) -> Record:
    """Entries [start, start + count) of the record: a stream's packets of those sequence
    numbers (sent, lateness, echoes), and those positions of its duplicate and reordered lists;
    the totals and how it was sent (scheduling, lanes) travel with the first part."""
    end = start + count
    if isinstance(record, ProbeRecord):
        return dataclasses.replace(record, samples=record.samples[start:end])
    received = record.received
    first = start == 0
    return StreamRecord(
        record.name,
        record.rate_pps,
        record.size_bytes,
        sent=record.sent[start:end],
        received={seq: received[seq] for seq in range(start, min(end, len(record.sent))) if seq in received},
        duplicates=record.duplicates if first else 0,
        reordered=record.reordered if first else 0,
        duplicate_seqs=record.duplicate_seqs[start:end],
        reordered_seqs=record.reordered_seqs[start:end],
        send_lateness_s=record.send_lateness_s[start:end],
        sender_scheduling=record.sender_scheduling if first else "",
        lane_cpus=list(record.lane_cpus) if first else [],
        lane_sent=list(record.lane_sent) if first else [],
    )


def merge(parts: Sequence[Record]) -> Record:
    """The record the parts were cut from (in order, the first one first)."""
    if not parts:
        raise BackendError("a probe record came back in no parts")
    head = parts[0]
    if isinstance(head, ProbeRecord):
        samples = [s for p in parts if isinstance(p, ProbeRecord) for s in p.samples]
        return dataclasses.replace(head, samples=samples)
    whole = StreamRecord(
        head.name,
        head.rate_pps,
        head.size_bytes,
        duplicates=head.duplicates,
        reordered=head.reordered,
        sender_scheduling=head.sender_scheduling,
        lane_cpus=list(head.lane_cpus),
        lane_sent=list(head.lane_sent),
    )
    for piece in parts:
        if not isinstance(piece, StreamRecord) or piece.name != head.name:
            raise BackendError(f"a part of probe {head.name}'s record is not one of its parts")
        whole.sent += piece.sent
        whole.received.update(piece.received)
        whole.duplicate_seqs += piece.duplicate_seqs
        whole.reordered_seqs += piece.reordered_seqs
        whole.send_lateness_s += piece.send_lateness_s
    return whole


def to_controller(record: Record, offset_s: float) -> Record:
    """The record with every instant on the controller's clock: send instants and arrival
    instants of a stream, the start instant of each sample (`Sample.sent_s`). Durations stay."""
    if isinstance(record, ProbeRecord):
        samples = [dataclasses.replace(s, sent_s=s.sent_s - offset_s) for s in record.samples]
        return dataclasses.replace(record, samples=samples)
    return dataclasses.replace(
        record,
        sent=[t - offset_s for t in record.sent],
        received={seq: t - offset_s for seq, t in record.received.items()},
        duplicate_seqs=list(record.duplicate_seqs),
        reordered_seqs=list(record.reordered_seqs),
        send_lateness_s=list(record.send_lateness_s),
    )
