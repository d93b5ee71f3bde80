"""Test traffic for the conformance suite: a paced, sequence-numbered UDP flow from node a to
node b, timestamped by the kernel on arrival (SO_TIMESTAMPNS) and by the sender just before
each send, both on CLOCK_REALTIME, so one-way delays come from one host clock. Bounded in count
and in time."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from drills.netns import kernel

PORT = 47_123
_HEADER = struct.Struct("!IQ")  # sequence, send instant (ns, CLOCK_REALTIME)
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")
SO_RCVBUFFORCE = 33  # asm-generic/socket.h; root only
SO_RXQ_OVFL = 40  # asm-generic/socket.h: each datagram carries the socket's drop count so far
_DROPS = struct.Struct("I")
UDP_IP_ETH_BYTES = 8 + 20 + 14  # what the wire (and a rate limiter) counts beyond the payload


@dataclass
class Flow:
    """What one flow observed: send instants by sequence, and every arrival (duplicates too)."""

    sent_ns: list[int] = field(default_factory=list)
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (sequence, arrival ns), in arrival order
    payload_bytes: int = 0
    # Datagrams the receiving socket itself dropped (its buffer full): loss at the receiver, not
    # on the link. Read from SO_RXQ_OVFL, so it counts drops before the last datagram read.
    socket_drops: int = 0

    def delays_s(self) -> list[float]:
        """One-way delay of the first arrival of each sequence received."""
        seen: dict[int, int] = {}
        for seq, at in self.arrivals:
            seen.setdefault(seq, at)
        return [(at - self.sent_ns[seq]) / 1e9 for seq, at in sorted(seen.items())]

    def received(self) -> set[int]:
        return {seq for seq, _ in self.arrivals}

    def lost(self) -> list[bool]:
        got = self.received()
        return [seq not in got for seq in range(len(self.sent_ns))]

    def duplicates(self) -> int:
        return len(self.arrivals) - len(self.received())

    def out_of_order(self) -> int:
        """Arrivals of a sequence lower than one that arrived before it."""
        highest, count = -1, 0
        for seq, _ in self.arrivals:
            if seq < highest:
                count += 1
            highest = max(highest, seq)
        return count


def send_flow(
    ns_a: str, addr_a: str, ns_b: str, addr_b: str, *, count: int, rate_pps: float, payload_bytes: int = 64,
    drain_s: float = 1.0,
) -> Flow:  # fmt: skip
    """Send `count` packets at `rate_pps` from a to b; wait `drain_s` after the last for arrivals."""
    receiver = kernel.run_in_namespace(ns_b, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sender = kernel.run_in_namespace(ns_a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    flow = Flow(payload_bytes=payload_bytes)
    stop = threading.Event()
    try:
        # FORCE: past net.core.rmem_max (208 KB, ~270 packets), so a receiver slowed down (the VM
        # lane runs under software emulation) queues packets instead of losing them itself.
        receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        receiver.bind((addr_b, PORT))
        sender.bind((addr_a, 0))
        thread = threading.Thread(target=_receive, args=(receiver, flow, stop), daemon=True)
        thread.start()
        padding = b"\0" * max(0, payload_bytes - _HEADER.size)
        start = time.monotonic()
        deadline = start + count / rate_pps * 2 + 10  # bounded in time whatever the pacing does
        for seq in range(count):
            due = start + seq / rate_pps
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() > deadline:
                break
            now_ns = time.time_ns()
            flow.sent_ns.append(now_ns)
            sender.sendto(_HEADER.pack(seq, now_ns) + padding, (addr_b, PORT))
        time.sleep(drain_s)
        stop.set()
        thread.join(timeout=60)  # it returns once the socket is drained
    finally:
        stop.set()
        sender.close()
        receiver.close()
    return flow


def _receive(sock: socket.socket, flow: Flow, stop: threading.Event) -> None:
    space = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_DROPS.size)
    while True:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            if stop.is_set():
                return  # stopped and drained: what is still queued was received, not lost
            continue
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(65_536, space)
        except OSError:
            return
        if len(data) < _HEADER.size:
            continue
        seq, _sent = _HEADER.unpack_from(data)
        at = time.time_ns()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                at = sec * 1_000_000_000 + nsec
            elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                flow.socket_drops = max(flow.socket_drops, _DROPS.unpack(payload[: _DROPS.size])[0])
        flow.arrivals.append((seq, at))
