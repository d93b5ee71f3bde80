"""A light one-way probe mesh between the nodes a partition separates: per-pair results.

A partition cuts (source node, destination node) pairs, and a one-way partition cuts only one
direction of each, so the mesh measures one way: every ordered pair gets its own sequence
numbers, sent from a socket opened in the source's namespace (bound to its primary address)
and received by a socket opened in the destination's namespace. Both are served by threads of
this process, so arrival instants are on the same monotonic clock as the send instants and the
fault instants: no echo is needed to see one direction cut.

Two threads serve the whole mesh whatever its size (one sender walking a merged schedule, one
receiver polling every destination socket), at a modest rate per pair, with the aggregate
bounded (`MAX_AGGREGATE_PPS`): the mesh must not compete with the drill's own probes.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from drills.engine.clock import Clock
from drills.errors import BackendError
from drills.netns import kernel
from drills.probes.udp_stream import StreamRecord

_HEADER = struct.Struct("!IIIQd")  # tag, magic, pair index, sequence, send instant (s)
_MAGIC = 0xD5111002
PAIR_PORT = 47_002
PAIR_RATE_PPS = 100  # per ordered pair: a 10 ms resolution for detection and recovery
MAX_AGGREGATE_PPS = 2_000  # the whole mesh; larger partitions get a lower rate per pair
MIN_PAIR_RATE_PPS = 5
PAIR_SIZE_BYTES = 64
_POLL_S = 0.05

Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class PairEnd:
    """One node of the mesh: its namespace and the address its probe socket binds to."""

    node: str
    namespace: str
    address: Address


def pair_name(source: str, target: str) -> str:
    return f"{source}->{target}"


def pair_rate_pps(pairs: int) -> int:
    """Rate of each pair: `PAIR_RATE_PPS`, lowered so the mesh stays under `MAX_AGGREGATE_PPS`."""
    if pairs <= 0:
        return PAIR_RATE_PPS
    return max(MIN_PAIR_RATE_PPS, min(PAIR_RATE_PPS, MAX_AGGREGATE_PPS // pairs))


class PairMesh:
    """One-way streams for `pairs` (ordered source, destination). `start()`, then `stop()` returns
    one StreamRecord per pair, named `source->destination`, in the order given; `received` holds
    arrival instants at the destination (one way), not echoes."""

    def __init__(self, pairs: list[tuple[PairEnd, PairEnd]], clock: Clock, tag: int) -> None:
        self.rate_pps = pair_rate_pps(len(pairs))
        self.records = [
            StreamRecord(pair_name(a.node, b.node), self.rate_pps, PAIR_SIZE_BYTES) for a, b in pairs
        ]
        self._targets = [(str(b.address), PAIR_PORT) for _a, b in pairs]
        self._clock = clock
        self._tag = tag
        self._stop = threading.Event()
        self._stop_sending = threading.Event()
        self._senders: dict[str, socket.socket] = {}
        self._receivers: dict[str, socket.socket] = {}
        self._sender_of: list[socket.socket] = []
        try:
            for a, b in pairs:
                if b.node not in self._receivers:
                    self._receivers[b.node] = _open(b, PAIR_PORT)
                if a.node not in self._senders:
                    self._senders[a.node] = _open(a, 0)
                self._sender_of.append(self._senders[a.node])
        except BaseException:
            self._close()
            raise
        self._threads = [
            threading.Thread(target=self._receive_loop, name="pair-mesh-recv", daemon=True),
            threading.Thread(target=self._send_loop, name="pair-mesh-send", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, drain_s: float = 0.2) -> list[StreamRecord]:
        """Stop sending, wait `drain_s` for packets in flight, close every socket."""
        self._stop_sending.set()
        if self._threads[1].is_alive():
            self._threads[1].join()
            time.sleep(drain_s)
        self._stop.set()
        if self._threads[0].is_alive():
            self._threads[0].join()
        self._close()
        return self.records

    def _close(self) -> None:
        for sock in (*self._senders.values(), *self._receivers.values()):
            sock.close()

    def _send_loop(self) -> None:
        records = self.records
        count = len(records)
        if not count:
            return
        # A merged schedule: slot k is pair k % count's packet k // count, so the mesh's packets
        # are spread evenly in time rather than sent in bursts of `count`.
        gap_s = 1.0 / (self.rate_pps * count)
        padding = b"\0" * (PAIR_SIZE_BYTES - _HEADER.size)
        start_s = self._clock.now_s()
        slot = 0
        while not self._stop_sending.is_set():
            scheduled = start_s + slot * gap_s
            if not self._clock.sleep_until(scheduled, self._stop_sending):
                break
            pair, sequence = slot % count, slot // count
            now = self._clock.now_s()
            record = records[pair]
            record.sent.append(now)
            record.send_lateness_s.append(now - scheduled)
            # No route / unreachable while the partition holds: the packet is simply lost.
            with contextlib.suppress(OSError):
                self._sender_of[pair].sendto(
                    _HEADER.pack(self._tag, _MAGIC, pair, sequence, now) + padding, self._targets[pair]
                )
            slot += 1

    def _receive_loop(self) -> None:
        sockets = list(self._receivers.values())
        records = self.records
        highest = [-1] * len(records)
        while not self._stop.is_set():
            ready, _, _ = select.select(sockets, [], [], _POLL_S)
            for sock in ready:
                try:
                    data = sock.recv(2048)
                except OSError:
                    continue
                arrived = self._clock.now_s()
                if len(data) < _HEADER.size:
                    continue
                tag, magic, pair, sequence, _sent = _HEADER.unpack_from(data)
                if tag != self._tag or magic != _MAGIC or pair >= len(records):
                    continue
                record = records[pair]
                if sequence in record.received:
                    record.duplicates += 1
                    record.duplicate_seqs.append(sequence)
                    continue
                record.received[sequence] = arrived
                if sequence < highest[pair]:
                    record.reordered += 1
                    record.reordered_seqs.append(sequence)
                highest[pair] = max(highest[pair], sequence)


def _open(end: PairEnd, port: int) -> socket.socket:
    family = socket.AF_INET6 if end.address.version == 6 else socket.AF_INET

    def bound() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((str(end.address), port))
        except BaseException:
            sock.close()
            raise
        return sock

    try:
        return kernel.run_in_namespace(end.namespace, bound)
    except OSError as exc:
        raise BackendError(f"partition pair probe: cannot open a socket in node {end.node}: {exc}") from exc
