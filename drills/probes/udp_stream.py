"""A constant-rate, sequence-numbered UDP stream echoed back by the far node: the outage meter.

The sender's socket is opened inside the source node's namespace and bound to that node's
address; the echo socket is opened inside the target's namespace. Both are ordinary sockets
served by threads of this process, so no subprocess runs per probe and every timestamp comes
from the same monotonic clock as the fault instants. Each packet carries a run tag, its sequence
number and its send instant; the receiver keeps the first arrival of each sequence number and
counts duplicates.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from drills.engine.clock import Clock
from drills.netns import kernel

_HEADER = struct.Struct("!IIQd")  # tag, magic/version, sequence, send instant (s)
_MAGIC = 0xD5111001
ECHO_PORT = 47_001
_POLL_S = 0.05


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


class UdpStream:
    """One udp-stream probe between two namespaces. `start()`, then `stop()` returns the record."""

    def __init__(
        self,
        name: str,
        source_ns: str,
        source_ip: IPv4Address | IPv6Address,
        target_ns: str,
        target_ip: IPv4Address | IPv6Address,
        rate_pps: int,
        size_bytes: int,
        clock: Clock,
        tag: int,
        dscp: int = 0,
    ) -> None:
        family = socket.AF_INET6 if target_ip.version == 6 else socket.AF_INET
        self.record = StreamRecord(name, rate_pps, size_bytes)
        self._clock = clock
        self._tag = tag
        self._target = (str(target_ip), ECHO_PORT)
        self._stop = threading.Event()
        self._stop_sending = threading.Event()
        self._echo = kernel.run_in_namespace(target_ns, lambda: _bound(family, str(target_ip), ECHO_PORT))
        self._sock = kernel.run_in_namespace(source_ns, lambda: _bound(family, str(source_ip), 0))
        if dscp:
            level, option = (
                (socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
                if family == socket.AF_INET6
                else (socket.IPPROTO_IP, socket.IP_TOS)
            )
            self._sock.setsockopt(level, option, dscp << 2)
        self._threads = [
            threading.Thread(target=self._echo_loop, name=f"{name}-echo", daemon=True),
            threading.Thread(target=self._receive_loop, name=f"{name}-recv", daemon=True),
            threading.Thread(target=self._send_loop, name=f"{name}-send", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_sending(self) -> None:
        self._stop_sending.set()

    def stop(self, drain_s: float = 0.5) -> StreamRecord:
        """Stop sending, wait `drain_s` for echoes in flight, close the sockets."""
        self._stop_sending.set()
        self._threads[2].join()
        time.sleep(drain_s)
        self._stop.set()
        for thread in self._threads[:2]:
            thread.join()
        self._sock.close()
        self._echo.close()
        return self.record

    def _send_loop(self) -> None:
        gap_s = 1.0 / self.record.rate_pps
        padding = b"\0" * max(0, self.record.size_bytes - _HEADER.size)
        start_s = self._clock.now_s()
        sequence = 0
        while not self._stop_sending.is_set():
            scheduled = start_s + sequence * gap_s
            if not self._clock.sleep_until(scheduled, self._stop_sending):
                break
            now = self._clock.now_s()
            self.record.sent.append(now)
            self.record.send_lateness_s.append(now - scheduled)
            # No route / unreachable during a fault: the packet is simply lost.
            with contextlib.suppress(OSError):
                self._sock.sendto(_HEADER.pack(self._tag, _MAGIC, sequence, now) + padding, self._target)
            sequence += 1

    def _echo_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._echo], [], [], _POLL_S)
            if not ready:
                continue
            try:
                data, peer = self._echo.recvfrom(65535)
                self._echo.sendto(data, peer)
            except OSError:
                continue

    def _receive_loop(self) -> None:
        highest = -1
        record = self.record
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], _POLL_S)
            if not ready:
                continue
            try:
                data = self._sock.recv(65535)
            except OSError:
                continue  # e.g. ICMP unreachable reported on the socket during a fault
            arrived = self._clock.now_s()
            if len(data) < _HEADER.size:
                continue
            tag, magic, sequence, _sent = _HEADER.unpack_from(data)
            if tag != self._tag or magic != _MAGIC:
                continue
            if sequence in record.received:
                record.duplicates += 1
                record.duplicate_seqs.append(sequence)
                continue
            record.received[sequence] = arrived
            if sequence < highest:
                record.reordered += 1
                record.reordered_seqs.append(sequence)
            highest = max(highest, sequence)


def _bound(family: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((address, port))
    return sock
