"""A light one-way probe mesh between the nodes a partition separates: per-pair results.

A partition cuts (source node, destination node) pairs, and a one-way partition cuts only one
direction of each, so the mesh measures one way: every ordered pair gets its own sequence
numbers, sent from a socket opened in the source node (bound to its primary address) and
received by a socket opened in the destination node, both through the backend's SocketOps. Both are served by threads of
this process, so arrival instants are on the same monotonic clock as the send instants and the
fault instants: no echo is needed to see one direction cut.

Two threads serve the whole mesh whatever its size (one sender walking a merged schedule, one
receiver polling every destination socket), at a modest rate per pair, with the aggregate
bounded (`MAX_AGGREGATE_PPS`): the mesh must not compete with the drill's own probes.

A node whose namespace is replaced (a container restored after node-loss) takes its mesh sockets
along: `reopen(node)` opens them again there and swaps them in as `UdpStream.reopen` does.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from drills import realtime
from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import BackendError
from drills.probes.udp_stream import Retiring, wake_receiver
from drills.records import StreamRecord
from drills.scenario import limits
from drills.scenario.limits import pair_rate_pps as pair_rate_pps  # the rule is the loader's bound too
from drills.scenario.resolved import Scenario
from drills.scenario.steps import PartitionStep

_HEADER = struct.Struct("!IIIQd")  # tag, magic, pair index, sequence, send instant (s)
_MAGIC = 0xD5111002
PAIR_PORT = 47_002
PAIR_RATE_PPS = limits.PAIR_RATE_PPS  # per ordered pair: a 10 ms resolution for detection and recovery
MAX_AGGREGATE_PPS = limits.MAX_PAIR_MESH_PPS  # the whole mesh; larger partitions get a lower rate per pair
# The floor is never reached: `drill validate` refuses partitions with more than
# limits.MAX_MESH_PAIRS pairs, so the mesh stays within MAX_AGGREGATE_PPS.
MIN_PAIR_RATE_PPS = limits.MIN_PAIR_RATE_PPS
PAIR_SIZE_BYTES = 64
_POLL_S = 0.05

Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class PairEnd:
    """One node of the mesh and the address its probe socket binds to."""

    node: str
    address: Address


MESH_TAG = 0x9A15  # the mesh's packets carry the seed xor this, the streams' the seed + their index


def mesh_tag(seed: int) -> int:
    return (seed ^ MESH_TAG) & 0xFFFFFFFF


def partition_node_pairs(scenario: Scenario) -> list[tuple[str, str]]:
    """Every ordered (source, destination) node pair across the groups of some partition of
    the timeline, once each, in the order the partitions happen."""
    wanted: dict[tuple[str, str], None] = {}
    partitions = sorted((s for s in scenario.steps if isinstance(s, PartitionStep)), key=lambda s: s.timing.at_s)
    for step in partitions:
        for i, sources in enumerate(step.groups):
            for j, targets in enumerate(step.groups):
                if i != j:
                    wanted.update(((s, t), None) for s in sources for t in targets if s != t)
    return list(wanted)


def mesh_ends(scenario: Scenario) -> list[tuple[PairEnd, PairEnd]]:
    """The mesh's pairs across every partition of the timeline (none without partitions). A
    pair whose nodes have no address of one family is left out (and reported as unreachable)."""
    topology = scenario.topology
    ends: list[tuple[PairEnd, PairEnd]] = []
    for source, target in partition_node_pairs(scenario):
        a, b = topology.node(source).primary_address, topology.node(target).primary_address
        if a is not None and b is not None and a.version == b.version:
            ends.append((PairEnd(source, a), PairEnd(target, b)))
    return ends


def pair_name(source: str, target: str) -> str:
    return f"{source}->{target}"


class PairMesh:
    """One-way streams for `pairs` (ordered source, destination). `start()`, then `stop()` returns
    one StreamRecord per pair, named `source->destination`, in the order given; `received` holds
    arrival instants at the destination (one way), not echoes."""

    def __init__(
        self,
        pairs: list[tuple[PairEnd, PairEnd]],
        sockets: SocketOps,
        clock: Clock,
        tag: int,
        *,
        send_from: Collection[str] | None = None,
        receive_at: Collection[str] | None = None,
    ) -> None:
        """`send_from` / `receive_at`: the nodes this mesh sends from / receives at (None: all);
        a mesh spread over several hosts runs one of these per host on the same `pairs` (so
        pair indices and rates agree) and its records are put together per pair: the sending
        host's send instants, the receiving host's arrivals."""
        self.rate_pps = pair_rate_pps(len(pairs))
        self.records = [StreamRecord(pair_name(a.node, b.node), self.rate_pps, PAIR_SIZE_BYTES) for a, b in pairs]
        self._targets = [(str(b.address), PAIR_PORT) for _a, b in pairs]
        self._sockets = sockets
        self._clock = clock
        self._tag = tag
        self._stop = threading.Event()
        self._stop_sending = threading.Event()
        self._senders: dict[str, socket.socket] = {}
        self._receivers: dict[str, socket.socket] = {}
        self._sender_of: list[socket.socket | None] = []  # per pair; None: not sent from here
        self._local = [i for i, (a, _b) in enumerate(pairs) if send_from is None or a.node in send_from]
        self._ends = {end.node: end for pair in pairs for end in pair}
        self._swap_lock = threading.Lock()
        self._closing = False
        self._retiring: list[Retiring] = []
        try:
            local = set(self._local)
            for index, (a, b) in enumerate(pairs):
                if b.node not in self._receivers and (receive_at is None or b.node in receive_at):
                    self._receivers[b.node] = _open(sockets, b, PAIR_PORT)
                if index in local and a.node not in self._senders:
                    self._senders[a.node] = _open(sockets, a, 0)
                self._sender_of.append(self._senders[a.node] if index in local else None)
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

    def reopen(self, node: str) -> list[str]:
        """The namespace of `node` was replaced: open the mesh's sockets of that node again,
        through the same SocketOps (which now reach the new namespace), and swap them in. The
        threads never hold a socket between two packets except through `_sender_of` and
        `_receivers`, which are replaced whole (copy on write) rather than changed in place, so
        each thread sees either the old set or the new one; it releases the old sockets once it
        holds the new set, and the last to release one closes it (see `UdpStream.reopen`).
        Returns the nodes reopened."""
        nodes = [node] if node in self._ends else []
        with self._swap_lock:
            if self._closing:
                return []
            opened_senders = {n: _open(self._sockets, self._ends[n], 0) for n in nodes if n in self._senders}
            try:
                opened_receivers = {
                    n: _open(self._sockets, self._ends[n], PAIR_PORT) for n in nodes if n in self._receivers
                }
            except BaseException:
                for sock in opened_senders.values():
                    sock.close()
                raise
            old_senders = [self._senders[n] for n in opened_senders]
            old_receivers = [self._receivers[n] for n in opened_receivers]
            self._retiring += [Retiring(sock, users=1) for sock in (*old_senders, *old_receivers)]
            replace = {id(self._senders[n]): sock for n, sock in opened_senders.items()}
            self._senders = {**self._senders, **opened_senders}
            self._sender_of = [replace.get(id(sock), sock) for sock in self._sender_of]
            self._receivers = {**self._receivers, **opened_receivers}
        for sock in old_receivers:
            wake_receiver(sock)  # the receive loop is in select(): it sees the socket readable
        return [n for n in nodes if n in opened_senders or n in opened_receivers]

    def _moved_off(self, sockets: list[socket.socket]) -> None:
        for retiring in self._retiring:
            if retiring.sock in sockets:
                retiring.release()

    def stop_sending(self) -> None:
        self._stop_sending.set()

    def stop(self, drain_s: float = 0.2) -> list[StreamRecord]:
        """Stop sending, wait `drain_s` for packets in flight, close every socket. The drain is
        waited once the sender has ended, also when `stop_sending` ended it earlier."""
        with self._swap_lock:
            self._closing = True
        self._stop_sending.set()
        if self._threads[1].ident is not None:  # started
            self._threads[1].join()
            if drain_s > 0:
                self._clock.sleep_until(self._clock.now_s() + drain_s)
        self._stop.set()
        if self._threads[0].is_alive():
            self._threads[0].join()
        self._close()
        return self.records

    def _close(self) -> None:
        for sock in (*self._senders.values(), *self._receivers.values()):
            sock.close()
        for retiring in self._retiring:  # closing twice is harmless
            retiring.sock.close()

    def _send_loop(self) -> None:
        records, local = self.records, self._local
        count = len(local)
        if not count:
            return
        # Due at a fault's edge: on time, ahead of ordinary tasks. (The mesh's rate is bounded,
        # 2,000 packets/s at most, so it never needs a stream's fallback when behind.)
        scheduling = realtime.raise_this_thread()
        for pair in local:
            records[pair].sender_scheduling = scheduling
        # A merged schedule: slot k is pair local[k % count]'s packet k // count, so the mesh's
        # packets are spread evenly in time rather than sent in bursts of `count`.
        gap_s = 1.0 / (self.rate_pps * count)
        padding = b"\0" * (PAIR_SIZE_BYTES - _HEADER.size)
        senders = self._sender_of
        start_s = self._clock.now_s()
        slot = 0
        while not self._stop_sending.is_set():
            scheduled = start_s + slot * gap_s
            if not self._clock.sleep_until(scheduled, self._stop_sending):
                break
            if self._sender_of is not senders:  # reopen() replaced some: move off the old ones
                previous, senders = senders, self._sender_of
                self._moved_off([sock for sock in set(previous) if sock is not None and sock not in senders])
            pair, sequence = local[slot % count], slot // count
            now = self._clock.now_s()
            record = records[pair]
            record.sent.append(now)
            record.send_lateness_s.append(now - scheduled)
            sender = senders[pair]
            assert sender is not None  # every pair in `local` has its sender
            # No route / unreachable while the partition holds: the packet is simply lost.
            # Never blocking (MSG_DONTWAIT), as a stream's sender (drills.probes.udp_stream).
            with contextlib.suppress(OSError):
                sender.sendto(
                    _HEADER.pack(self._tag, _MAGIC, pair, sequence, now) + padding, socket.MSG_DONTWAIT, self._targets[pair]
                )
            slot += 1

    def _receive_loop(self) -> None:
        realtime.raise_this_thread(realtime.RECEIVER_PRIORITY)  # never holds the GIL from a sender for long
        receivers = self._receivers
        sockets = list(receivers.values())
        highest = [-1] * len(self.records)
        while not self._stop.is_set():
            if self._receivers is not receivers:  # reopen() replaced some: read what the old
                previous, receivers = sockets, self._receivers  # ones hold, then move off them
                sockets = list(receivers.values())
                retired = [sock for sock in previous if sock not in sockets]
                for sock in retired:
                    while data := _queued(sock):
                        self._take(data, self._clock.now_s(), highest)
                self._moved_off(retired)
            ready, _, _ = select.select(sockets, [], [], _POLL_S)
            for sock in ready:
                try:
                    data = sock.recv(2048)
                except OSError:
                    continue
                self._take(data, self._clock.now_s(), highest)

    def _take(self, data: bytes, arrived: float, highest: list[int]) -> None:
        """Record one datagram received at `arrived` (anything not of this mesh is ignored)."""
        if len(data) < _HEADER.size:
            return
        tag, magic, pair, sequence, _sent = _HEADER.unpack_from(data)
        records = self.records
        if tag != self._tag or magic != _MAGIC or pair >= len(records):
            return
        record = records[pair]
        if sequence in record.received:
            record.duplicates += 1
            record.duplicate_seqs.append(sequence)
            return
        record.received[sequence] = arrived
        if sequence < highest[pair]:
            record.reordered += 1
            record.reordered_seqs.append(sequence)
        highest[pair] = max(highest[pair], sequence)


def _queued(sock: socket.socket) -> bytes:
    """One datagram still queued on `sock`, or b"" when none is."""
    try:
        return sock.recv(2048, socket.MSG_DONTWAIT)
    except OSError:  # BlockingIOError: nothing queued
        return b""


def _open(sockets: SocketOps, end: PairEnd, port: int) -> socket.socket:
    family = socket.AF_INET6 if end.address.version == 6 else socket.AF_INET
    try:
        sock = sockets.open_socket(end.node, family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((str(end.address), port))
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise BackendError(f"partition pair probe: cannot open a socket in node {end.node}: {exc}") from exc
    return sock
