"""Application probes: icmp, tcp-connect, http, dns and command, sampled at an interval.

Each probe is one thread that enters the source node's namespace once (setns is per thread;
`kernel.run_in_namespace` runs the whole sampling loop there) and takes a sample at
t0 + k·interval on the drill's clock. Every socket is opened by that thread, so it lives in the
node's namespace; only `command` starts a process per sample (`/bin/sh -c`, born in the
namespace because it is forked by that thread). A sample that is not answered within the
probe's timeout fails, and every sample is kept: the outage is derived from them afterwards
(`drills.probes.app_measure`).

Scheduling: a sample that outlasts the interval (a timeout longer than the interval, during an
outage) delays the next one instead of being followed by a burst: the next sample takes the
first slot that is less than half an interval in the past. The actual send instants are what
the analysis uses, so a stretched spacing widens the stated accuracy rather than hiding in it.

A node whose namespace is replaced (a container restored after node-loss gets a new one) takes
its probes along: `reopen(namespace)` asks the loop to close its sampler, enter the namespace the
name now denotes (a fresh thread: setns is per thread) and open it there before the next sample;
the schedule and the record continue.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from drills.clock import Clock, SystemClock
from drills.errors import BackendError, BadInput
from drills.netns import kernel
from drills.scenario import model

IPAddress = IPv4Address | IPv6Address
AppProbeModel = model.IcmpProbe | model.TcpConnectProbe | model.HttpProbe | model.DnsProbe | model.CommandProbe

MAX_SAMPLES = 1_000_000  # hard bound of one record when no count is given (~150 MB at worst)
OPEN_TIMEOUT_S = 10.0  # start() waits this long for the thread to enter the namespace
STOP_SLACK_S = 2.0  # stop() waits for the sample in flight: its timeout plus this
MAX_RESPONSE_BYTES = 1 << 20  # an HTTP response is read up to this much
DNS_PORT = 53


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
    `namespace` None samples from the caller's own namespace (tests with a fake sampler)."""

    def __init__(
        self,
        name: str,
        kind: str,
        sampler: Sampler,
        namespace: str | None,
        interval_s: float,
        timeout_s: float,
        clock: Clock,
        *,
        count: int | None = None,
        duration_s: float | None = None,
        target: str = "",
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise BadInput(f"probe {name}: interval and timeout must be positive")
        self.record = ProbeRecord(name, kind, interval_s, timeout_s, target)
        self._sampler = sampler
        self._namespace = namespace
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
        """Start sampling; returns once the probe is set up in its namespace. BackendError when
        it cannot be (no such namespace, no raw socket)."""
        self._thread.start()
        if not self._opened.wait(OPEN_TIMEOUT_S):
            self._stop.set()
            raise BackendError(f"probe {self.record.name}: not set up after {OPEN_TIMEOUT_S:g} s")
        if self._setup_error is not None:
            where = f" in {self._namespace}" if self._namespace else ""
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

    def reopen(self, namespace: str) -> list[str]:
        """The namespace `namespace` was replaced (same name, a new namespace behind it): from
        the next sample on, this probe samples from the new one. The sample in flight, if any,
        finishes where it started. Returns what will move (for the log)."""
        if namespace != self._namespace or self._stop.is_set() or self._finished.is_set():
            return []
        self._moved.set()
        return [f"{self.record.kind} sampler"]

    def _run(self) -> None:
        try:
            if self._namespace is None:
                self._loop()
            else:
                while kernel.run_in_namespace(self._namespace, self._loop):
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
    probe: AppProbeModel,
    source_ns: str,
    source_ip: IPAddress | None,
    target_ip: IPAddress | None,
    target_port: int | None = None,
    clock: Clock | None = None,
    *,
    count: int | None = None,
    duration_s: float | None = None,
) -> AppProbe:
    """The probe a scenario entry describes, sampling from namespace `source_ns`. Addresses are
    resolved by the caller: `source_ip` (bound when of the target's IP version; None: the
    kernel picks), `target_ip` (unused by `command`), `target_port` (None: the probe's `port`,
    53 for dns)."""
    clock = clock or SystemClock()
    timeout_s = probe.timeout
    sampler: Sampler
    if isinstance(probe, model.CommandProbe):
        sampler = _Command(probe.command, timeout_s, clock)
        target = f"/bin/sh -c {probe.command!r}"
    else:
        if target_ip is None:
            raise BadInput(f"probe {probe.name}: no target address")
        source = source_ip if source_ip is not None and source_ip.version == target_ip.version else None
        if isinstance(probe, model.IcmpProbe):
            sampler = _Icmp(source, target_ip, timeout_s, clock, random.Random())
            target = str(target_ip)
        else:
            default_port = DNS_PORT if isinstance(probe, model.DnsProbe) else probe.port
            port = target_port if target_port is not None else default_port
            target = f"[{target_ip}]:{port}" if target_ip.version == 6 else f"{target_ip}:{port}"
            if isinstance(probe, model.TcpConnectProbe):
                sampler = _TcpConnect(source, target_ip, port, timeout_s, clock)
            elif isinstance(probe, model.HttpProbe):
                sampler = _Http(source, target_ip, port, probe, clock)
                target = f"http://{target}{probe.path}"
            else:
                sampler = _Dns(source, target_ip, port, probe, clock, random.Random())
                target = f"{probe.query} {probe.record} @{target}"
    return AppProbe(
        probe.name, probe.type, sampler, source_ns, probe.interval, timeout_s, clock,
        count=count, duration_s=duration_s, target=target,
    )  # fmt: skip


# --------------------------------------------------------------------------- samplers


def _family(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _why(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOBUFS:  # what an IPv6 send through a link without carrier gets
        text += " (is the outgoing interface down or without carrier?)"
    return text


def _connected(
    kind: socket.SocketKind, source: IPAddress | None, target: IPAddress, port: int, timeout_s: float
) -> socket.socket:
    """A socket bound to `source` (if any) and connected to target:port within `timeout_s`."""
    sock = socket.socket(_family(target), kind)
    try:
        sock.settimeout(timeout_s)
        if source is not None:
            sock.bind((str(source), 0))
        sock.connect((str(target), port))
    except BaseException:
        sock.close()
        raise
    return sock


_ICMP4_ERRORS = {3: "destination unreachable", 11: "time exceeded", 12: "parameter problem"}
_ICMP6_ERRORS = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 4: "parameter problem"}


_SOL_RAW, _ICMP_FILTER = 255, 1  # linux/icmp.h: a 32-bit mask of the ICMP types to block
_ICMP6_FILTER = 1  # linux/icmpv6.h: a 256-bit mask of the ICMPv6 types to block


def _block_all_but(*kinds: int) -> bytes:
    """An ICMP(v6) filter: bit n set blocks type n; 32-bit words in host byte order."""
    words = [0xFFFFFFFF] * 8
    for kind in kinds:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class _Icmp:
    """Echo over a raw socket (root; no ping_group_range needed). Every raw ICMP socket of the
    namespace sees every ICMP message, so replies are matched on identifier, sequence and a
    per-probe token in the payload; errors quoting our request are reported as such."""

    def __init__(
        self, source: IPAddress | None, target: IPAddress, timeout_s: float, clock: Clock, rng: random.Random
    ) -> None:
        self._source, self._target, self._timeout_s, self._clock = source, target, timeout_s, clock
        self._v6 = target.version == 6
        self._ident = rng.getrandbits(16)
        self._token = rng.getrandbits(64).to_bytes(8, "big")
        self._count = 0
        self._sock: socket.socket | None = None

    def open(self) -> None:
        proto = socket.IPPROTO_ICMPV6 if self._v6 else socket.IPPROTO_ICMP
        sock = socket.socket(_family(self._target), socket.SOCK_RAW, proto)
        try:
            # Let through only echo replies and the errors that may quote a request.
            if self._v6:
                sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, _block_all_but(129, *_ICMP6_ERRORS))
            else:
                sock.setsockopt(_SOL_RAW, _ICMP_FILTER, _block_all_but(0, *_ICMP4_ERRORS)[:4])
            if self._source is not None:
                sock.bind((str(self._source), 0))
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        assert self._sock is not None
        self._count += 1
        sequence = self._count & 0xFFFF
        payload = self._token + self._count.to_bytes(8, "big")
        header = struct.pack("!BBHHH", 128 if self._v6 else 8, 0, 0, self._ident, sequence)
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:  # stale messages (late replies, errors about others' packets) go first
                self._sock.recv(65535, socket.MSG_DONTWAIT)
        if not self._v6:  # the kernel computes the ICMPv6 checksum itself
            header = header[:2] + struct.pack("!H", _checksum(header + payload)) + header[4:]
        try:
            self._sock.sendto(header + payload, (str(self._target), 0))
        except OSError as exc:
            return False, None, f"send failed: {_why(exc)}"
        deadline = time.monotonic() + self._timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self._sock], [], [], remaining)[0]:
                continue
            try:
                data, peer = self._sock.recvfrom(65535)
            except OSError as exc:
                return False, None, f"receive failed: {_why(exc)}"
            verdict = self._match(data, sequence, payload)
            if verdict is True:
                latency_s = self._clock.now_s() - sent_s
                return True, latency_s, "echo reply"
            if verdict is not None:
                return False, None, f"{verdict} from {peer[0]}"
        return False, None, f"no echo reply within {self._timeout_s:g} s"

    def _match(self, data: bytes, sequence: int, payload: bytes) -> bool | str | None:
        """True: our reply; text: an ICMP error about our request; None: someone else's."""
        if not self._v6:  # IPv4 raw sockets receive the IP header too
            data = data[(data[0] & 0x0F) * 4 :] if data else data
        if len(data) < 8:
            return None
        kind, code, _sum, ident, seq = struct.unpack_from("!BBHHH", data)
        if kind == (129 if self._v6 else 0):
            return True if (ident, seq) == (self._ident, sequence) and data[8:] == payload else None
        errors = _ICMP6_ERRORS if self._v6 else _ICMP4_ERRORS
        if kind not in errors:
            return None
        quoted = data[8:]
        if self._v6:
            quoted = quoted[40:]  # the quoted IPv6 header (no extension headers: we sent none)
        elif quoted:
            quoted = quoted[(quoted[0] & 0x0F) * 4 :]
        if len(quoted) < 8:
            return None
        q_kind, _code, _sum, q_ident, q_seq = struct.unpack_from("!BBHHH", quoted)
        if (q_kind, q_ident, q_seq) != (128 if self._v6 else 8, self._ident, sequence):
            return None
        return f"ICMP {errors[kind]} (code {code})"


class _NoSocket:
    """A sampler that opens a fresh socket or process per sample: nothing to set up or close."""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class _TcpConnect(_NoSocket):
    def __init__(self, source: IPAddress | None, target: IPAddress, port: int, timeout_s: float, clock: Clock) -> None:
        self._source, self._target, self._port, self._timeout_s, self._clock = source, target, port, timeout_s, clock

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        try:
            _connected(socket.SOCK_STREAM, self._source, self._target, self._port, self._timeout_s).close()
        except TimeoutError:
            return False, None, f"no connection within {self._timeout_s:g} s"
        except ConnectionRefusedError:
            return False, None, f"connection refused by {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"connect failed: {_why(exc)}"
        latency_s = self._clock.now_s() - sent_s
        return True, latency_s, "connected"


class _Http(_NoSocket):
    """A plain HTTP/1.1 GET with `Connection: close`; the response is read to its end (or
    `MAX_RESPONSE_BYTES`), all within the probe's timeout."""

    def __init__(self, source: IPAddress | None, target: IPAddress, port: int, probe: model.HttpProbe, clock: Clock):
        self._source, self._target, self._port, self._clock = source, target, port, clock
        self._timeout_s = probe.timeout
        self._want, self._needle = probe.status, probe.body_contains
        path = probe.path if probe.path.startswith("/") else "/" + probe.path
        host = f"[{target}]" if target.version == 6 else str(target)
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: drills-probe\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        deadline = time.monotonic() + self._timeout_s
        response = b""
        try:
            with _connected(socket.SOCK_STREAM, self._source, self._target, self._port, self._timeout_s) as sock:
                sock.sendall(self._request)
                while len(response) < MAX_RESPONSE_BYTES and not _complete(response):
                    sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    response += chunk
        except TimeoutError:
            return False, None, f"no complete response within {self._timeout_s:g} s ({len(response)} bytes)"
        except ConnectionRefusedError:
            return False, None, f"connection refused by {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"HTTP request failed: {_why(exc)}"
        latency_s = self._clock.now_s() - sent_s
        head, _, body = response.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return False, None, f"not an HTTP response: {status_line[:60]!r}"
        status = int(parts[1])
        if status != self._want:
            return False, None, f"HTTP {status_line[len(parts[0]) + 1 :][:60]}, wanted {self._want}"
        if self._needle is not None:
            if b"transfer-encoding: chunked" in head.lower():
                body = _dechunk(body)
            if self._needle.encode() not in body:
                return False, None, f"HTTP {status} but the body lacks {self._needle!r}"
        return True, latency_s, f"HTTP {status}"


def _complete(response: bytes) -> bool:
    """The response carries its headers and, when it gives a Content-Length, that much body."""
    head, found, body = response.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False  # chunked or unknown length: read until the server closes


def _dechunk(body: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        size_text = body[pos:end].split(b";")[0].strip() if end >= 0 else b""
        try:
            size = int(size_text, 16)
        except ValueError:
            return out
        if size == 0:
            return out
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


_DNS_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def dns_query(ident: int, name: str, rtype: str) -> bytes:
    """A recursive-desired query for `name`/`rtype`, class IN (RFC 1035 §4.1)."""
    try:
        labels = [label.encode("idna") for label in name.rstrip(".").split(".") if label]
    except UnicodeError:
        raise BadInput(f"'{name}' is not a valid DNS name") from None
    if any(len(label) > 63 for label in labels) or sum(len(label) + 1 for label in labels) > 254:
        raise BadInput(f"'{name}' is not a valid DNS name (a label over 63 or the name over 253 characters)")
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", _DNS_TYPES[rtype], 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]  # IndexError on a truncated message
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def dns_answer(response: bytes, query: bytes, rtype: str) -> tuple[bool, str] | None:
    """Verdict on `response` to `query`: None when it answers another query (id or question
    differ); else (ok, detail), ok meaning rcode 0 with at least one answer of type `rtype`."""
    if len(response) < 12 or response[:2] != query[:2] or not response[2] & 0x80:
        return None
    question = query[12:]
    if response[12 : 12 + len(question)].lower() != question.lower():
        return None
    flags, _qd, answers = struct.unpack_from("!HHH", response, 2)
    if flags & 0x0F:
        return False, f"rcode {flags & 0x0F} ({_RCODES.get(flags & 0x0F, 'error')})"
    wanted, matching, pos = _DNS_TYPES[rtype], 0, 12 + len(question)
    try:
        for _ in range(answers):
            pos = _skip_name(response, pos)
            kind, _class, _ttl, length = struct.unpack_from("!HHIH", response, pos)
            pos += 10 + length
            matching += kind == wanted
    except (IndexError, struct.error):
        pos = len(response) + 1
    if pos > len(response):  # a name, record header or rdata runs past the end
        return False, "malformed response"
    if matching:
        return True, f"{matching} {rtype} answer{'s' if matching > 1 else ''}"
    truncated = " (truncated)" if flags & 0x0200 else ""
    return False, f"no {rtype} answer ({answers} of other types){truncated}"


class _Dns(_NoSocket):
    """One UDP query a sample, from a fresh connected socket (so only the server's answers
    arrive, and an ICMP port unreachable shows as a refusal); any retry is the next sample."""

    def __init__(
        self,
        source: IPAddress | None,
        target: IPAddress,
        port: int,
        probe: model.DnsProbe,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._source, self._target, self._port, self._clock, self._rng = source, target, port, clock, rng
        self._timeout_s, self._name, self._rtype = probe.timeout, probe.query, probe.record
        dns_query(0, self._name, self._rtype)  # bad names are refused now, not once a sample

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        query = dns_query(self._rng.getrandbits(16), self._name, self._rtype)
        deadline = time.monotonic() + self._timeout_s
        try:
            with _connected(socket.SOCK_DGRAM, self._source, self._target, self._port, self._timeout_s) as sock:
                sock.send(query)
                while (remaining := deadline - time.monotonic()) > 0:
                    sock.settimeout(remaining)
                    verdict = dns_answer(sock.recv(65535), query, self._rtype)
                    if verdict is not None:
                        latency_s = self._clock.now_s() - sent_s
                        ok, detail = verdict
                        return ok, latency_s if ok else None, detail
        except TimeoutError:
            pass
        except ConnectionRefusedError:
            return False, None, f"port unreachable: no DNS server on {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"query failed: {_why(exc)}"
        return False, None, f"no answer within {self._timeout_s:g} s"


class _Command(_NoSocket):
    """`/bin/sh -c COMMAND` in its own session, forked by the probe's thread and so born in
    the node's namespace; killed with its whole process group when it outlives the timeout."""

    def __init__(self, command: str, timeout_s: float, clock: Clock) -> None:
        self._command, self._timeout_s, self._clock = command, timeout_s, clock

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", self._command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return False, None, f"cannot start /bin/sh: {_why(exc)}"
        timed_out = False
        try:
            _, err = proc.communicate(timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            # The shell may be done while a child it left behind holds stderr open: that is
            # an exit, but the leftover goes with the group either way.
            timed_out, err = proc.poll() is None, b""
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        latency_s = self._clock.now_s() - sent_s
        if timed_out:
            return False, None, f"still running after {self._timeout_s:g} s: killed"
        if proc.returncode == 0:
            return True, latency_s, "exit 0"
        lines = err.decode(errors="replace").strip().splitlines()
        said = f": {lines[-1][:160]}" if lines else ""
        if proc.returncode < 0:
            return False, None, f"killed by signal {-proc.returncode}{said}"
        return False, None, f"exit status {proc.returncode}{said}"
