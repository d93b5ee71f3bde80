"""The samplers of application probes: ICMP echo, TCP connect, HTTP GET and a command.

Each runs in its probe's thread, inside the source node (drills.probes.app): a socket made here
lives in that node's namespace, a process forked here is born there. Every wait is bounded by
the probe's timeout, measured on the drill's clock. DNS is in drills.probes.dns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import signal
import socket
import struct
import subprocess
from ipaddress import IPv4Address, IPv6Address

from drills.clock import Clock
from drills.scenario.probes import HttpSpec

IPAddress = IPv4Address | IPv6Address
MAX_RESPONSE_BYTES = 1 << 20  # an HTTP response is read up to this much


def family_of(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def why(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOBUFS:  # what an IPv6 send through a link without carrier gets
        text += " (is the outgoing interface down or without carrier?)"
    return text


def connected(
    kind: socket.SocketKind, source: IPAddress | None, target: IPAddress, port: int, timeout_s: float
) -> socket.socket:
    """A socket bound to `source` (if any) and connected to target:port within `timeout_s`."""
    sock = socket.socket(family_of(target), kind)
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


class Icmp:
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
        sock = socket.socket(family_of(self._target), socket.SOCK_RAW, proto)
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
            return False, None, f"send failed: {why(exc)}"
        now_s = self._clock.now_s
        deadline = now_s() + self._timeout_s
        while (remaining := deadline - now_s()) > 0:
            if not select.select([self._sock], [], [], remaining)[0]:
                continue
            try:
                data, peer = self._sock.recvfrom(65535)
            except OSError as exc:
                return False, None, f"receive failed: {why(exc)}"
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


class NoSocket:
    """A sampler that opens a fresh socket or process per sample: nothing to set up or close."""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class TcpConnect(NoSocket):
    def __init__(self, source: IPAddress | None, target: IPAddress, port: int, timeout_s: float, clock: Clock) -> None:
        self._source, self._target, self._port, self._timeout_s, self._clock = source, target, port, timeout_s, clock

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        try:
            connected(socket.SOCK_STREAM, self._source, self._target, self._port, self._timeout_s).close()
        except TimeoutError:
            return False, None, f"no connection within {self._timeout_s:g} s"
        except ConnectionRefusedError:
            return False, None, f"connection refused by {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"connect failed: {why(exc)}"
        latency_s = self._clock.now_s() - sent_s
        return True, latency_s, "connected"


class Http(NoSocket):
    """A plain HTTP/1.1 GET with `Connection: close`; the response is read to its end (or
    `MAX_RESPONSE_BYTES`), all within the probe's timeout."""

    def __init__(self, source: IPAddress | None, target: IPAddress, port: int, spec: HttpSpec, clock: Clock):
        self._source, self._target, self._port, self._clock = source, target, port, clock
        self._timeout_s = spec.timeout_s
        self._want, self._needle = spec.status, spec.body_contains
        path = spec.path if spec.path.startswith("/") else "/" + spec.path
        host = f"[{target}]" if target.version == 6 else str(target)
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: drills-probe\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        now_s = self._clock.now_s
        deadline = now_s() + self._timeout_s
        response = b""
        try:
            with connected(socket.SOCK_STREAM, self._source, self._target, self._port, self._timeout_s) as sock:
                sock.sendall(self._request)
                while len(response) < MAX_RESPONSE_BYTES and not _complete(response):
                    sock.settimeout(max(deadline - now_s(), 1e-3))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    response += chunk
        except TimeoutError:
            return False, None, f"no complete response within {self._timeout_s:g} s ({len(response)} bytes)"
        except ConnectionRefusedError:
            return False, None, f"connection refused by {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"HTTP request failed: {why(exc)}"
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


class Command(NoSocket):
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
            return False, None, f"cannot start /bin/sh: {why(exc)}"
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
