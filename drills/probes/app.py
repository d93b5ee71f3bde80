"""Application probes: icmp, tcp-connect, http, dns and command, sampled at an interval.

Each probe is one thread that enters the source node once (the backend's
`SocketOps.run_in_node` runs the whole sampling loop there: setns is per thread) and takes a
sample at t0 + k·interval on the drill's clock. Every socket is opened by that thread, so it
lives in the node; only `command` starts a process per sample (`/bin/sh -c`, born in the node
because it is forked by that thread). A sample that is not answered within the probe's timeout
fails, and every sample is kept: the outage is derived from them afterwards
(`drills.measure_samples`). The samplers live in drills.probes.samplers and drills.probes.dns.

Scheduling: a sample that outlasts the interval (a timeout longer than the interval, during an
outage) delays the next one instead of being followed by a burst: the next sample takes the
first slot that is less than half an interval in the past. The actual send instants are what
the analysis uses, so a stretched spacing widens the stated accuracy rather than hiding in it.

A node whose namespace is replaced (a container restored after node-loss gets a new one) takes
its probes along: `reopen(node)` asks the loop to close its sampler, enter the node again (a
fresh thread: setns is per thread), where the SocketOps now reach the new namespace, and open
it there before the next sample; the schedule and the record continue.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Protocol

from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import BackendError, BadInput
from drills.probes.dns import DNS_PORT, Dns
from drills.probes.samplers import Command, Http, Icmp, TcpConnect
from drills.records import ProbeRecord, Sample
from drills.scenario.probes import AppSpec, CommandSpec, DnsSpec, HttpSpec, IcmpSpec, TcpConnectSpec

MAX_SAMPLES = 1_000_000  # hard bound of one record when no count is given (~150 MB at worst)
OPEN_TIMEOUT_S = 10.0  # start() waits this long for the thread to enter the node
STOP_SLACK_S = 2.0  # stop() waits for the sample in flight: its timeout plus this


class Sampler(Protocol):
    """One kind of sample. `open` and `take` run in the probe's thread, inside the namespace."""

    def open(self) -> None:
        """Prepare what lives for the probe's whole life (a raw socket)."""

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        """One sample started at `sent_s`: (ok, latency, detail); bounded by the timeout."""

    def close(self) -> None:
        """Release what `open` made."""


class AppProbe:
    """One application probe: `start()`, then `stop()` returns its record. The loop ends on
    `stop()`, after `count` samples or after `duration_s`, whichever comes first.
    It samples inside `node`, entered through `sockets`; `node` None samples from the caller's
    own namespace (tests with a fake sampler)."""

    def __init__(
        self,
        name: str,
        kind: str,
        sampler: Sampler,
        node: str | None,
        interval_s: float,
        timeout_s: float,
        clock: Clock,
        *,
        sockets: SocketOps | None = None,
        count: int | None = None,
        duration_s: float | None = None,
        target: str = "",
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise BadInput(f"probe {name}: interval and timeout must be positive")
        self.record = ProbeRecord(name, kind, interval_s, timeout_s, target)
        if node is not None and sockets is None:
            raise BadInput(f"probe {name}: a probe in node {node} needs the backend's sockets")
        self._sampler = sampler
        self._node = node
        self._sockets = sockets
        self._clock = clock
        self._limit = MAX_SAMPLES if count is None else min(count, MAX_SAMPLES)
        self._capped = count is None or count > MAX_SAMPLES
        self._duration_s = duration_s
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._finished = threading.Event()
        self._moved = threading.Event()  # the namespace was replaced: enter it again
        self._schedule: tuple[float, float] | None = None  # (start, end) instants, set once
        self._slot = 0
        self._setup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"probe-{name}", daemon=True)

    def start(self) -> None:
        """Start sampling; returns once the probe is set up in its node. BackendError when it
        cannot be (no such node or namespace, no raw socket)."""
        self._thread.start()
        if not self._opened.wait(OPEN_TIMEOUT_S):
            self._stop.set()
            raise BackendError(f"probe {self.record.name}: not set up after {OPEN_TIMEOUT_S:g} s")
        if self._setup_error is not None:
            where = f" in node {self._node}" if self._node else ""
            raise BackendError(
                f"probe {self.record.name}: cannot start{where}: {self._setup_error}"
            ) from self._setup_error

    def wait(self, timeout_s: float) -> bool:
        """Wait until the loop ended on its own bounds (count, duration); False on timeout."""
        return self._finished.wait(timeout_s)

    def stop(self) -> ProbeRecord:
        """Stop sampling (the sample in flight finishes within its timeout) and return the record."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(self.record.timeout_s + STOP_SLACK_S)
        if self._thread.is_alive() and self.record.error is None:
            self.record.error = f"the probe did not stop within {self.record.timeout_s + STOP_SLACK_S:g} s"
        return self.record

    def halt(self) -> None:
        """Take no new sample, and return at once (the sample in flight ends within its timeout:
        `wait` for it); `stop` still returns the record."""
        self._stop.set()

    def reopen(self, node: str) -> list[str]:
        """The namespace of `node` was replaced (a new namespace behind the same node): from
        the next sample on, this probe samples from the new one. The sample in flight, if any,
        finishes where it started. Returns what will move (for the log)."""
        if node != self._node or self._stop.is_set() or self._finished.is_set():
            return []
        self._moved.set()
        return [f"{self.record.kind} sampler"]

    def _run(self) -> None:
        try:
            if self._node is None or self._sockets is None:
                self._loop()
            else:
                while self._sockets.run_in_node(self._node, self._loop):
                    pass  # the namespace was replaced: enter the new one, the schedule goes on
        except BaseException as exc:  # the probe broke: reported by start() or in the record
            if self._opened.is_set():
                self.record.error = f"{type(exc).__name__}: {exc}"
            else:
                self._setup_error = exc
        finally:
            self._opened.set()
            self._finished.set()

    def _loop(self) -> bool:
        """Sample until done (False), or until the namespace was replaced (True)."""
        self._sampler.open()
        self._opened.set()
        try:
            return self._sample_until_done()
        finally:
            self._sampler.close()

    def _sample_until_done(self) -> bool:
        clock, samples = self._clock, self.record.samples
        interval_s = self.record.interval_s
        if self._schedule is None:
            now_s = clock.now_s()
            self._schedule = (now_s, math.inf if self._duration_s is None else now_s + self._duration_s)
        start_s, end_s = self._schedule
        slot = self._slot
        while len(samples) < self._limit:
            due_s = start_s + slot * interval_s
            if due_s >= end_s or not clock.sleep_until(due_s, self._stop):
                return False
            if self._moved.is_set():
                self._moved.clear()
                self._slot = slot  # this slot is taken in the new namespace
                return True
            sent_s = clock.now_s()
            ok, latency_s, detail = self._sampler.take(sent_s)
            samples.append(Sample(sent_s, ok, latency_s, detail))
            # Next: the first slot less than half an interval in the past (no catch-up burst).
            behind = (clock.now_s() - start_s) / interval_s
            slot = max(slot + 1, math.ceil(behind - 0.5))
        if self._capped:
            self.record.error = f"stopped at the limit of {MAX_SAMPLES} samples"
        return False


# --------------------------------------------------------------------------- factory


def make_probe(
    spec: AppSpec,
    sockets: SocketOps,
    clock: Clock,
    *,
    target_port: int | None = None,
    count: int | None = None,
    duration_s: float | None = None,
) -> AppProbe:
    """The probe `spec` describes, sampling from its source node through `sockets`. The source
    address is bound when of the target's IP version (else the kernel picks); `target_port`
    None: the probe's `port`, 53 for dns."""
    timeout_s = spec.timeout_s
    sampler: Sampler
    if isinstance(spec, CommandSpec):
        sampler = Command(spec.command, timeout_s, clock)
        target = f"/bin/sh -c {spec.command!r}"
    else:
        target_ip = spec.target_address
        if target_ip is None:
            raise BadInput(f"probe {spec.name}: no target address")
        source_ip = spec.source_address
        source = source_ip if source_ip is not None and source_ip.version == target_ip.version else None
        if isinstance(spec, IcmpSpec):
            sampler = Icmp(source, target_ip, timeout_s, clock, random.Random())
            target = str(target_ip)
        else:
            default_port = DNS_PORT if isinstance(spec, DnsSpec) else spec.port
            port = target_port if target_port is not None else default_port
            target = f"[{target_ip}]:{port}" if target_ip.version == 6 else f"{target_ip}:{port}"
            if isinstance(spec, TcpConnectSpec):
                sampler = TcpConnect(source, target_ip, port, timeout_s, clock)
            elif isinstance(spec, HttpSpec):
                sampler = Http(source, target_ip, port, spec, clock)
                target = f"http://{target}{spec.path}"
            else:
                sampler = Dns(source, target_ip, port, spec, clock, random.Random())
                target = f"{spec.query} {spec.record} @{target}"
    return AppProbe(
        spec.name, spec.kind, sampler, spec.source, spec.interval_s, timeout_s, clock,
        sockets=sockets, count=count, duration_s=duration_s, target=target,
    )  # fmt: skip
