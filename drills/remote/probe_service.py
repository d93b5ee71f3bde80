"""Probe endpoints on an agent's host: the probes whose source node lives here, and the echoes of
streams whose source lives on another host.

In a run over several hosts the controller has no socket in any node, so each probe runs on the
host of its source node, inside that host's agent (`drill agent`), with the same probe classes
as on one machine (drills.probes) and on the agent's monotonic clock. The agent dispatches its
`probe` frames here by method name; every argument and answer is plain data or a record the
codec carries (resolved probe specs, StreamRecord, ProbeRecord, ProbeHealth, RecordParts).
The controller's side, which maps the instants onto its own clock, is
drills.remote.remote_probes.

Everything is bounded: at most `MAX_ENDPOINTS` probes and echoes at once, ids of at most
`MAX_ID_BYTES`, drains of at most `limits.MAX_TIMEOUT_S`, and records larger than a frame are
handed back in parts (drills.remote.probe_records). Bad arguments raise BadInput with what was
wrong; a probe that cannot start raises BackendError (and leaves nothing running).
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import BackendError, BadInput
from drills.measure_samples import app_health, stream_health
from drills.probes.app import AppProbe, make_probe
from drills.probes.pair_mesh import PairEnd, PairMesh
from drills.probes.udp_stream import UdpEcho, UdpStream
from drills.records import ProbeHealth, ProbeRecord, StreamRecord
from drills.remote import probe_records
from drills.remote.probe_records import PART_UNITS, RecordParts
from drills.scenario import limits
from drills.scenario.probes import CommandSpec, DnsSpec, HttpSpec, IcmpSpec, TcpConnectSpec, UdpStreamSpec

MAX_ENDPOINTS = 2 * limits.MAX_PROBES
"""Probes and echoes one agent holds at once (kept records awaiting their parts included): every
probe of a drill may run here, and every stream's echo too."""

MAX_ID_BYTES = 200
STOP_ALL_JOIN_S = 1.0
"""`stop_all` waits this long, in all, for application probes' samples in flight (the dead-man
switch must finish within seconds; a sample left running ends within its own timeout)."""

METHODS = frozenset(
    {"echo", "stream", "app", "mesh", "health", "follow", "port", "retarget", "stop_sending", "stop", "part", "release", "stop_all"}
)
"""What the agent may dispatch a `probe` frame to (its allowlist): every public method here."""

_APP_SPECS = (IcmpSpec, TcpConnectSpec, HttpSpec, DnsSpec, CommandSpec)
Endpoint = UdpStream | AppProbe | UdpEcho | PairMesh


class ProbeService:
    """The agent's probe endpoints, over `sockets` (the agent's node operations: sockets in its
    nodes) and timed on `clock` (the agent's). Thread-safe: the agent may serve a `health` call
    while a `stop` drains."""

    def __init__(
        self, sockets: SocketOps, clock: Clock, max_endpoints: int = MAX_ENDPOINTS, part_units: int = PART_UNITS
    ) -> None:
        self._sockets = sockets
        self._part_units = part_units
        self._clock = clock
        self._max = max_endpoints
        self._lock = threading.Lock()
        self._running: dict[str, Endpoint] = {}
        self._kept: dict[str, StreamRecord | ProbeRecord] = {}  # stopped, awaiting their parts
        self._opening: set[str] = set()  # ids taken while their endpoint opens (outside the lock)
        self._cancelled: set[str] = set()  # of those, the ones stop_all() stopped meanwhile

    # ----------------------------------------------------------------------- start

    def echo(self, probe_id: str, node: str, address: str | IPv4Address | IPv6Address, family: int) -> int:
        """Start an echo in `node`, bound to `address` (port: the kernel's choice) for a stream
        whose source is on another host; returns its port. `family` is socket.AF_INET or
        AF_INET6 (or the IP version, 4 or 6) and must match the address."""
        ip = _address(address)
        wanted = {4: socket.AF_INET, 6: socket.AF_INET6, socket.AF_INET: socket.AF_INET, socket.AF_INET6: socket.AF_INET6}
        kind = wanted.get(family) if isinstance(family, int) else None
        if kind is None or kind != (socket.AF_INET6 if ip.version == 6 else socket.AF_INET):
            raise BadInput(f"echo {probe_id!r}: family {family!r} does not fit address {ip}")
        _check_name("node", node)

        def make() -> UdpEcho:
            return UdpEcho(probe_id, self._sockets, node, ip, kind)

        echo = self._start(probe_id, make)
        assert isinstance(echo, UdpEcho)
        return echo.port

    def stream(self, probe_id: str, spec: UdpStreamSpec, tag: int, echo_at: Sequence[object] | None) -> None:
        """Start a udp-stream from its source node here, tagged `tag`. `echo_at` (address, port)
        is an echo another host's agent opened for it; None: its target node is here too and
        the stream opens its own echo, as on one machine."""
        if not isinstance(spec, UdpStreamSpec):
            raise BadInput(f"stream {probe_id!r}: not a udp-stream probe: {type(spec).__name__}")
        if spec.source_address is None or spec.target_node is None or spec.target_address is None:
            raise BadInput(f"stream {probe_id!r}: its source or target has no address")
        if not isinstance(tag, int) or not 0 <= tag <= 0xFFFFFFFF:
            raise BadInput(f"stream {probe_id!r}: tag {tag!r} is not a 32-bit number")
        at = None if echo_at is None else _echo_at(probe_id, echo_at)
        source_ip, target_ip, target_node = spec.source_address, spec.target_address, spec.target_node

        def make() -> UdpStream:
            return UdpStream(
                spec.name, self._sockets, spec.source, source_ip, target_node, target_ip,
                spec.rate_pps, spec.size_bytes, self._clock, tag=tag, dscp=spec.dscp, echo_at=at,
            )  # fmt: skip

        self._start(probe_id, make)

    def app(self, probe_id: str, spec: IcmpSpec | TcpConnectSpec | HttpSpec | DnsSpec | CommandSpec) -> None:
        """Start an application probe (icmp, tcp-connect, http, dns, command) in its source node."""
        if not isinstance(spec, _APP_SPECS):
            raise BadInput(f"probe {probe_id!r}: not an application probe: {type(spec).__name__}")

        def make() -> AppProbe:
            return make_probe(spec, self._sockets, self._clock)

        self._start(probe_id, make)

    def mesh(
        self,
        probe_id: str,
        pairs: Sequence[Sequence[object]],
        tag: int,
        send_from: Sequence[str],
        receive_at: Sequence[str],
    ) -> None:
        """Start this host's part of the partition pair mesh: `pairs` are every pair of the
        drill's mesh, each (source node, its address, destination node, its address), in the
        same order on every host; this host sends from the nodes in `send_from` and receives at
        those in `receive_at` (its own). `stop` answers a record per pair, of what happened here."""
        if not isinstance(pairs, list | tuple) or not 0 < len(pairs) <= limits.MAX_MESH_PAIRS:
            raise BadInput(f"mesh {probe_id!r}: 1 to {limits.MAX_MESH_PAIRS} pairs, not {len(pairs) if isinstance(pairs, list | tuple) else pairs!r:.80}")
        if not isinstance(tag, int) or not 0 <= tag <= 0xFFFFFFFF:
            raise BadInput(f"mesh {probe_id!r}: tag {tag!r} is not a 32-bit number")
        ends = []
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 4:
                raise BadInput(f"mesh {probe_id!r}: a pair is (source, address, destination, address), not {pair!r:.80}")
            source, source_ip, target, target_ip = pair
            _check_name("node", source)
            _check_name("node", target)
            ends.append((PairEnd(str(source), _address(source_ip)), PairEnd(str(target), _address(target_ip))))
        senders, receivers = _names(probe_id, send_from), _names(probe_id, receive_at)

        def make() -> PairMesh:
            return PairMesh(ends, self._sockets, self._clock, tag, send_from=senders, receive_at=receivers)

        self._start(probe_id, make)

    def _start(self, probe_id: str, make: Callable[[], Endpoint]) -> Endpoint:
        _check_name("probe id", probe_id)
        with self._lock:  # reserved under the lock, opened outside it: health calls go on
            if probe_id in self._running or probe_id in self._kept or probe_id in self._opening:
                raise BadInput(f"probe id {probe_id!r} is already in use on this host")
            if len(self._running) + len(self._kept) + len(self._opening) >= self._max:
                raise BadInput(f"probe {probe_id!r}: this host already runs {self._max} probes and echoes (the limit)")
            self._opening.add(probe_id)
        try:
            endpoint: Endpoint = make()
            try:
                endpoint.start()
            except BaseException:
                _halt(endpoint)
                raise
        except BaseException as exc:
            with self._lock:
                self._opening.discard(probe_id)
            if isinstance(exc, OSError):
                raise BackendError(f"probe {probe_id}: cannot start: {exc}") from exc
            raise
        with self._lock:
            self._opening.discard(probe_id)
            cancelled = probe_id in self._cancelled
            self._cancelled.discard(probe_id)
            if not cancelled:
                self._running[probe_id] = endpoint
        if cancelled:  # stop_all() ran while it opened: it must not outlive the dead-man switch
            _halt(endpoint)
            raise BackendError(f"probe {probe_id}: stopped while it started (every probe of this host was stopped)")
        return endpoint

    # ----------------------------------------------------------------------- while running

    def health(self, now_s: float) -> list[ProbeHealth]:
        """Every probe's state at `now_s` (the agent's clock), in start order; echoes have none."""
        with self._lock:
            probes = [p for p in self._running.values() if isinstance(p, UdpStream | AppProbe)]
        return [stream_health(p.record, now_s) if isinstance(p, UdpStream) else app_health(p.record, now_s) for p in probes]

    def follow(self, node: str) -> dict[str, list[str]]:
        """`node`'s namespace was replaced: reopen every socket of every endpoint here that lives
        in it. Per probe id, what moved (or why it could not: that endpoint keeps its old
        socket and measures an outage from here)."""
        with self._lock:
            endpoints = list(self._running.items())
        moved: dict[str, list[str]] = {}
        for probe_id, endpoint in endpoints:
            try:
                lines = endpoint.reopen(node)
                if isinstance(endpoint, PairMesh):
                    lines = [f"pair mesh sockets of {n}" for n in lines]
            except (OSError, BackendError) as exc:
                lines = [f"could not follow: {exc}"]
            if lines:
                moved[probe_id] = lines
        return moved

    def port(self, probe_id: str) -> int:
        """An echo's port now (it may change when its node's namespace is replaced)."""
        echo = self._get(probe_id)
        if not isinstance(echo, UdpEcho):
            raise BadInput(f"probe id {probe_id!r} is not an echo")
        return echo.port

    def retarget(self, probe_id: str, echo_at: Sequence[object]) -> None:
        """A stream's echo on another host moved: send there from now on."""
        stream = self._get(probe_id)
        if not isinstance(stream, UdpStream):
            raise BadInput(f"probe id {probe_id!r} is not a stream")
        stream.retarget(_echo_at(probe_id, echo_at))

    # ----------------------------------------------------------------------- stop

    def stop_sending(self, probe_ids: Sequence[str]) -> None:
        """Stop these streams' senders now, so that one drain afterwards covers them all."""
        for probe_id in probe_ids:
            stream = self._get(probe_id)
            if isinstance(stream, UdpStream | PairMesh):
                stream.stop_sending()

    def stop(
        self, probe_id: str, drain_s: float
    ) -> StreamRecord | ProbeRecord | RecordParts | list[StreamRecord | ProbeRecord | RecordParts] | None:
        """Stop one endpoint: a stream after waiting `drain_s` for its echoes in flight, an
        application probe once its sample in flight is done, an echo at once (None). A record
        of more than `PART_UNITS` packets or samples stays here: the answer is then RecordParts, and the record is
        fetched with `part` and dropped with `release`. A pair mesh answers such an answer per
        pair (a kept one under `PROBE_ID/INDEX`)."""
        if not isinstance(drain_s, int | float) or not 0 <= drain_s <= limits.MAX_TIMEOUT_S or math.isnan(drain_s):
            raise BadInput(f"probe {probe_id!r}: drain {drain_s!r} s is not between 0 and {limits.MAX_TIMEOUT_S:g}")
        _check_name("probe id", probe_id)
        with self._lock:
            endpoint = self._running.pop(probe_id, None)
        if endpoint is None:
            raise BadInput(f"no probe {probe_id!r} runs on this host")
        if isinstance(endpoint, UdpEcho):
            endpoint.stop()
            return None
        if isinstance(endpoint, PairMesh):
            records = endpoint.stop(float(drain_s))
            return [self._answer(f"{probe_id}/{i}", record) for i, record in enumerate(records)]
        record = endpoint.stop(float(drain_s)) if isinstance(endpoint, UdpStream) else endpoint.stop()
        return self._answer(probe_id, record)

    def _answer(self, record_id: str, record: StreamRecord | ProbeRecord) -> StreamRecord | ProbeRecord | RecordParts:
        """The record itself, or RecordParts when it is too large for a frame (kept here)."""
        size = probe_records.units(record)
        if size <= self._part_units:
            return record
        with self._lock:
            self._kept[record_id] = record
        return RecordParts(record_id, size, self._part_units)

    def part(self, probe_id: str, start: int, count: int) -> StreamRecord | ProbeRecord:
        """Entries [start, start + count) of a kept record (count at most PART_UNITS)."""
        if not (isinstance(start, int) and isinstance(count, int) and start >= 0 and 0 < count <= PART_UNITS):
            raise BadInput(f"record {probe_id!r}: part {start!r}+{count!r} is out of bounds")
        with self._lock:
            record = self._kept.get(probe_id)
        if record is None:
            raise BadInput(f"no record of probe {probe_id!r} is kept on this host")
        return probe_records.part(record, start, count)

    def release(self, probe_id: str) -> None:
        """Drop a kept record (idempotent)."""
        with self._lock:
            self._kept.pop(probe_id, None)

    def stop_all(self) -> int:
        """Stop everything at once, nothing drained, records dropped: the dead-man switch and
        the controller's abort. Returns how many endpoints were stopped. Application probes get
        `STOP_ALL_JOIN_S` in all for their samples in flight."""
        with self._lock:
            endpoints = list(self._running.values())
            self._running.clear()
            self._kept.clear()
            self._cancelled |= self._opening
        for endpoint in endpoints:
            _halt(endpoint)
        deadline_s = self._clock.now_s() + STOP_ALL_JOIN_S
        for endpoint in endpoints:
            if isinstance(endpoint, AppProbe):
                endpoint.wait(max(0.0, deadline_s - self._clock.now_s()))
        return len(endpoints)

    def _get(self, probe_id: str) -> Endpoint:
        _check_name("probe id", probe_id)
        with self._lock:
            endpoint = self._running.get(probe_id)
        if endpoint is None:
            raise BadInput(f"no probe {probe_id!r} runs on this host")
        return endpoint


def _halt(endpoint: Endpoint) -> None:
    """Stop without waiting: a stream's or echo's sockets close now; an application probe takes
    no new sample (the one in flight ends within its timeout)."""
    if isinstance(endpoint, UdpStream | PairMesh):
        endpoint.stop(drain_s=0.0)
    elif isinstance(endpoint, UdpEcho):
        endpoint.stop()
    else:
        endpoint.halt()


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value.encode()) > MAX_ID_BYTES:
        raise BadInput(f"{what} {value!r:.80} is not a name of 1 to {MAX_ID_BYTES} bytes")


def _names(probe_id: str, value: object) -> set[str]:
    if not isinstance(value, list | tuple | set | frozenset) or len(value) > limits.MAX_NODES:
        raise BadInput(f"mesh {probe_id!r}: {value!r:.80} is not a list of nodes")
    for name in value:
        _check_name("node", name)
    return {str(name) for name in value}


def _address(value: object) -> IPv4Address | IPv6Address:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    try:
        return ip_address(str(value))
    except ValueError as exc:
        raise BadInput(f"{value!r:.80} is not an IP address") from exc


def _echo_at(probe_id: str, value: Sequence[object]) -> tuple[str, int]:
    """(address, port) from a frame (a JSON array arrives as a list)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise BadInput(f"stream {probe_id!r}: echo_at {value!r:.80} is not (address, port)")
    address, port = value
    if not isinstance(port, int) or not 0 < port < 65536:
        raise BadInput(f"stream {probe_id!r}: echo port {port!r} is not a UDP port")
    return (str(_address(address)), port)
