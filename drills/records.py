"""What probes observe, as plain records: the meeting point of probes, the engine and analysis.

Probes fill these while they run; the live view reads them (drills.measure_samples) and the
analysis turns them into figures (drills.measure, drills.measure_samples) once the drill is
over. A leaf: it imports nothing of the project, so neither side reaches into the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamRecord:
    """Everything one stream observed. `sent[i]` is the send instant of sequence i; `received`
    maps sequence -> first arrival instant of its echo."""

    name: str
    rate_pps: int
    size_bytes: int
    sent: list[float] = field(default_factory=list)
    received: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    reordered: int = 0
    duplicate_seqs: list[int] = field(default_factory=list)  # one entry per extra copy received
    reordered_seqs: list[int] = field(default_factory=list)  # arrived after a higher sequence
    send_lateness_s: list[float] = field(default_factory=list)  # actual - scheduled send instant
    # How far this record's instants may be from the drill clock: 0 on the controller's own
    # clock; the clock offset's bound for a stream run by another host's agent.
    clock_bound_s: float = 0.0
    # How its sender threads were scheduled (drills.realtime): "SCHED_FIFO 2" or why not.
    sender_scheduling: str = ""
    # Its sender lanes (drills.probes.udp_stream), one entry each: the CPU it was held to (-1:
    # none), and how many packets it sent. Empty for a sender with no lanes (a pair mesh).
    lane_cpus: list[int] = field(default_factory=list)
    lane_sent: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    """One sample. `sent_s`: when it started, on the drill's monotonic clock; `latency_s`: time
    to the answer (round trip, connection, full response, command run) when it succeeded, else
    None; `detail`: why it failed, or a short description of the answer."""

    sent_s: float
    ok: bool
    latency_s: float | None
    detail: str


@dataclass
class ProbeRecord:
    """Everything one application probe observed. `error` is set when the probe itself broke
    (not the network): the samples then stop early and the record is incomplete."""

    name: str
    kind: str  # the probe type: icmp, tcp-connect, http, dns, command
    interval_s: float
    timeout_s: float
    target: str = ""  # what was probed, for reports ("198.19.0.2:8080", "/bin/sh -c 'true'")
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ProbeHealth:
    """One probe's state at a glance. `loss_last` is the share lost among the packets (or
    samples) of the last settled second; `latency_s` the median round trip over it."""

    name: str
    kind: str
    sent: int
    received: int
    loss_last: float | None  # None: nothing sent in the last settled second
    latency_s: float | None
    state: str  # "ok" | "impaired" | "down" | "idle"
