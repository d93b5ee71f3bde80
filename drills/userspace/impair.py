"""The impairment model of one link direction, as netem defines it, in plain Python.

Pure and seeded: given the same seed, parameters and frames it takes the same decisions, so
its statistics are unit-tested without a kernel and the relay process only adds I/O.

Per frame, in netem's order (net/sched/sch_netem.c): loss (random, optionally correlated, or
the Gilbert-Elliott four-parameter model), duplication (the copy is impaired on its own),
corruption (one bit flipped after the Ethernet header, so the frame still reaches the peer and
fails its checksum there, as with netem), reordering (the chosen frame skips the delay and so
overtakes those queued), delay (delay +/- jitter drawn from the distribution, successive draws
correlated as netem's `get_crandom` does: next = (1 - rho) * U + rho * last). Jitter may reorder
frames, as netem's time-sorted queue does. After the delay comes the rate: a token bucket whose
bucket holds 4 ms of traffic and whose queue holds 50 ms (the kernel path's tbf sizing), frames
counted with their Ethernet header as qdiscs count them.

The delay line is bounded as netem's queue is by its `limit`: `DELAY_LINE_LIMIT_PACKETS` frames
(the largest limit the kernel path gives netem) and `DELAY_LINE_LIMIT_BYTES`; a frame (or copy)
arriving at a full line is dropped and counted in `limit_drops`, as netem counts its drops.

Address resolution (ARP) frames draw from a random stream of their own, derived from the
direction's seed: whether the first ARP exchange after a failover onto a lossy link is lost is
then fixed by the scenario's seed, not by how many other frames (IPv6 autoconfiguration, whose
timing the kernel randomises) happened to cross the link first. A seeded drill replays the same.

Distributions, with `jitter` their standard deviation (uniform: the half-width, as netem):
uniform on [delay - jitter, delay + jitter]; normal; pareto (alpha 3, shifted and scaled to mean
`delay`); paretonormal (a quarter normal plus three quarters pareto, rescaled, as iproute2's
table generator mixes them).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

ETHERNET_HEADER_BYTES = 14
_ETHERTYPE_ARP = b"\x08\x06"  # bytes 12-13 of an untagged Ethernet frame
BUCKET_S = 0.004  # tbf's burst: 4 ms of traffic, at least two full frames
QUEUE_S = 0.050  # tbf's queue in front of the bucket: 50 ms of traffic
MIN_BUCKET_BYTES = 2 * 1514
PARETO_ALPHA = 3.0
_PARETO_MEAN = PARETO_ALPHA / (PARETO_ALPHA - 1)  # x_m = 1
_PARETO_SD = math.sqrt(PARETO_ALPHA / ((PARETO_ALPHA - 1) ** 2 * (PARETO_ALPHA - 2)))
_MIX_SD = math.sqrt(0.25**2 + 0.75**2)
_NORMAL = NormalDist()
_TOKEN_SLACK_BYTES = 1e-6  # float rounding: a frame this close to affordable goes now, not in 1e-16 s
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")
# 100,000 frames: the kernel path's netem limit at most (degrade.NETEM_LIMIT_MAX_PACKETS), a
# second of delay at 100,000 packets/s. The byte bound keeps jumbo frames from taking gigabytes.
DELAY_LINE_LIMIT_PACKETS = 100_000
DELAY_LINE_LIMIT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class GilbertElliott:
    """netem's `loss gemodel p r 1-h 1-k`, all in percent: p good->bad, r bad->good, then the
    loss probability in the bad state (`bad_loss_pct`, netem's 1-h, 100 by default) and in the
    good state (`good_loss_pct`, netem's 1-k, 0 by default)."""

    p_pct: float
    r_pct: float
    bad_loss_pct: float = 100.0
    good_loss_pct: float = 0.0


@dataclass(frozen=True)
class Impairments:
    """One direction's parameters, in the relay's units; zero or None means untouched."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    distribution: str | None = None  # None: uniform, netem's default without a table
    correlation_pct: float = 0.0  # of successive delays
    loss_pct: float = 0.0
    loss_correlation_pct: float = 0.0
    loss_bursts: GilbertElliott | None = None
    duplicate_pct: float = 0.0
    corrupt_pct: float = 0.0
    reorder_pct: float = 0.0
    rate_bps: int | None = None

    def to_wire(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies every value and costs ~10x as much, on
        # the path of every confirmed apply (the relay's answer and the client's comparison).
        wire = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.loss_bursts is not None:
            wire["loss_bursts"] = {name: getattr(self.loss_bursts, name) for name in GilbertElliott.__dataclass_fields__}
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Impairments:
        values = dict(data)
        bursts = values.pop("loss_bursts", None)
        known = {f for f in cls.__dataclass_fields__ if f != "loss_bursts"}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        if values.get("distribution") not in (None, *DISTRIBUTIONS):
            raise ValueError(f"unknown distribution {values['distribution']!r}")
        rate = values.get("rate_bps")
        if rate is not None and int(rate) <= 0:
            raise ValueError("rate_bps must be positive")
        ge = GilbertElliott(**bursts) if bursts is not None else None
        return cls(**values, loss_bursts=ge)


class Correlated:
    """netem's correlated uniform: next = (1 - rho) * U + rho * last."""

    def __init__(self) -> None:
        self.last = 0.0

    def next(self, rng: random.Random, correlation_pct: float) -> float:
        value = rng.random()
        if correlation_pct <= 0:
            return value
        rho = correlation_pct / 100.0
        self.last = (1.0 - rho) * value + rho * self.last
        return self.last


def standard_deviate(distribution: str | None, u: float, rng: random.Random) -> float:
    """A deviate of zero mean and unit spread (uniform: in [-1, 1]) from the uniform `u`."""
    u = min(max(u, 1e-12), 1 - 1e-12)
    if distribution in (None, "uniform"):
        return 2.0 * u - 1.0
    if distribution == "normal":
        return _NORMAL.inv_cdf(u)
    pareto = (float((1.0 - u) ** (-1.0 / PARETO_ALPHA)) - _PARETO_MEAN) / _PARETO_SD
    if distribution == "pareto":
        return pareto
    # paretonormal: the normal part needs its own draw (a sum has no simple inverse CDF).
    return (0.25 * _NORMAL.inv_cdf(min(max(rng.random(), 1e-12), 1 - 1e-12)) + 0.75 * pareto) / _MIX_SD


@dataclass
class Counters:
    received: int = 0
    delivered: int = 0
    lost: int = 0  # by the loss model
    queue_drops: int = 0  # rate queue full
    write_drops: int = 0  # the far TAP refused the frame (down)
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    limit_drops: int = 0  # the delay line was full (netem's `limit`)


@dataclass
class Direction:
    """The state of one direction: its parameters, random state, delay line and rate queue."""

    params: Impairments
    rng: random.Random
    counters: Counters = field(default_factory=Counters)
    limit_packets: int = DELAY_LINE_LIMIT_PACKETS  # the delay line's bounds (netem's `limit`)
    limit_bytes: int = DELAY_LINE_LIMIT_BYTES
    _delay_cor: Correlated = field(default_factory=Correlated)
    _loss_cor: Correlated = field(default_factory=Correlated)
    _ge_bad: bool = False
    _line: list[tuple[float, int, bytes]] = field(default_factory=list)  # heap: (due, order, frame)
    _order: int = 0
    _line_bytes: int = 0
    _queue: deque[bytes] = field(default_factory=deque)
    _queued_bytes: int = 0
    _tokens: float = 0.0
    _tokens_at: float = 0.0
    # ARP's own stream and netem state beside it, swapped in while an ARP frame is decided.
    _arp: tuple[random.Random, Correlated, Correlated, bool] | None = None

    def __post_init__(self) -> None:
        self._arp = (random.Random(self.rng.getrandbits(64)), Correlated(), Correlated(), False)

    def set(self, params: Impairments, now: float) -> None:
        """New parameters, in force for the next frame; frames in flight keep their schedule."""
        if params.rate_bps != self.params.rate_bps:
            self._tokens, self._tokens_at = 0.0, now
        self.params = params

    # ------------------------------------------------------------------ arrival

    def arrive(self, frame: bytes, now: float) -> None:
        """A frame read from the near TAP: decide its fate and schedule it (and any copy)."""
        if frame[12:14] != _ETHERTYPE_ARP:
            self._arrive(frame, now)
            return
        self._swap_arp_stream()
        try:
            self._arrive(frame, now)
        finally:
            self._swap_arp_stream()

    def _swap_arp_stream(self) -> None:
        assert self._arp is not None  # set by __post_init__
        rng, delay_cor, loss_cor, ge_bad = self._arp
        self._arp = (self.rng, self._delay_cor, self._loss_cor, self._ge_bad)
        self.rng, self._delay_cor, self._loss_cor, self._ge_bad = rng, delay_cor, loss_cor, ge_bad

    def _arrive(self, frame: bytes, now: float) -> None:
        self.counters.received += 1
        if self._lose():
            self.counters.lost += 1
            return
        copies = 1
        p = self.params
        if p.duplicate_pct and self.rng.random() * 100 < p.duplicate_pct:
            copies = 2
            self.counters.duplicated += 1
        for _ in range(copies):
            out = frame
            if p.corrupt_pct and self.rng.random() * 100 < p.corrupt_pct:
                out = self._corrupt(frame)
                self.counters.corrupted += 1
            if p.reorder_pct and p.delay_s and self.rng.random() * 100 < p.reorder_pct:
                self.counters.reordered += 1
                self._schedule(now, out)  # sent at once: overtakes the delayed ones
            else:
                self._schedule(now + self._delay(), out)

    def _lose(self) -> bool:
        p = self.params
        ge = p.loss_bursts
        if ge is not None:
            # netem's loss_gilb_ell: the state moves first, then the state's loss applies.
            if not self._ge_bad:
                if self.rng.random() * 100 < ge.p_pct:
                    self._ge_bad = True
                return self.rng.random() * 100 < ge.good_loss_pct
            if self.rng.random() * 100 < ge.r_pct:
                self._ge_bad = False
            return self.rng.random() * 100 < ge.bad_loss_pct
        if not p.loss_pct:
            return False
        return self._loss_cor.next(self.rng, p.loss_correlation_pct) * 100 < p.loss_pct

    def _delay(self) -> float:
        p = self.params
        if not p.jitter_s:
            return p.delay_s
        u = self._delay_cor.next(self.rng, p.correlation_pct)
        return max(0.0, p.delay_s + p.jitter_s * standard_deviate(p.distribution, u, self.rng))

    def _corrupt(self, frame: bytes) -> bytes:
        if len(frame) <= ETHERNET_HEADER_BYTES:
            return frame
        data = bytearray(frame)
        at = self.rng.randrange(ETHERNET_HEADER_BYTES, len(data))
        data[at] ^= 1 << self.rng.randrange(8)
        return bytes(data)

    def _schedule(self, due: float, frame: bytes) -> None:
        if len(self._line) >= self.limit_packets or self._line_bytes + len(frame) > self.limit_bytes:
            self.counters.limit_drops += 1
            return
        self._order += 1
        self._line_bytes += len(frame)
        heapq.heappush(self._line, (due, self._order, frame))

    # ------------------------------------------------------------------ departure

    def due(self, now: float) -> list[bytes]:
        """Frames to write to the far TAP now, in order; moves delayed frames into the rate queue."""
        out: list[bytes] = []
        rate = self.params.rate_bps
        while self._line and self._line[0][0] <= now:
            frame = heapq.heappop(self._line)[2]
            self._line_bytes -= len(frame)
            if rate is None:
                out.append(frame)
            elif self._queued_bytes + len(frame) <= self._queue_limit(rate):
                self._queue.append(frame)
                self._queued_bytes += len(frame)
            else:
                self.counters.queue_drops += 1
        if rate is not None and self._queue:
            self._refill(now, rate)
            while self._queue and len(self._queue[0]) <= self._tokens + _TOKEN_SLACK_BYTES:
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                self._tokens -= len(frame)
                out.append(frame)
        elif rate is None and self._queue:  # the rate was lifted: what waited goes now
            out.extend(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        return out

    def next_due(self, now: float) -> float | None:
        """When `due` will next have something to do (None: nothing pending)."""
        times = []
        if self._line:
            times.append(self._line[0][0])
        rate = self.params.rate_bps
        if self._queue and rate is not None:
            self._refill(now, rate)
            missing = len(self._queue[0]) - self._tokens
            times.append(now + max(0.0, missing) * 8 / rate if missing > _TOKEN_SLACK_BYTES else now)
        elif self._queue:
            times.append(now)
        return min(times) if times else None

    def pending(self) -> int:
        return len(self._line) + len(self._queue)

    def _bucket(self, rate_bps: int) -> float:
        return max(rate_bps / 8 * BUCKET_S, MIN_BUCKET_BYTES)

    def _queue_limit(self, rate_bps: int) -> float:
        return self._bucket(rate_bps) + rate_bps / 8 * QUEUE_S

    def _refill(self, now: float, rate_bps: int) -> None:
        if now > self._tokens_at:
            self._tokens = min(self._bucket(rate_bps), self._tokens + (now - self._tokens_at) * rate_bps / 8)
            self._tokens_at = now
