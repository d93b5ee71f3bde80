"""A constant-rate, sequence-numbered UDP stream echoed back by the far node: the outage meter.

The sender's socket is opened inside the source node (through the backend's SocketOps) and
bound to that node's address; the echo socket is opened inside the target node. Both are ordinary sockets
served by threads of this process, so no subprocess runs per probe and every timestamp comes
from the same monotonic clock as the fault instants. Each packet carries a run tag, its sequence
number and its send instant; the receiver keeps the first arrival of each sequence number and
counts duplicates.

The echo is its own piece (`UdpEcho`): a stream whose target node is on this host opens one
itself; a stream whose target lives on another host (several machines) is handed `echo_at`, the
address of an echo that host's agent opened, and then opens no echo socket and runs no echo
thread. Every instant of the record is still the sender's: the echo only returns packets.

Per packet the engine costs one `sendto` in a sender lane (and a wake-up of the other lane), a
`recvfrom_into` and a `sendto` in the echo, and a `recv_into` in the receiver, each thread
blocking in its call (no `select`); stop() wakes them with `shutdown`. bench/probes.py measures
what that sustains (10,000 packets/s over ten streams on two CPUs, loss-free and on time).

The sender is two lanes, two threads held to two CPUs (one lane where the process may run on
one CPU only). Each wakes at every packet's instant, the second `LANE_STAGGER_S` later, and sends
what is due and not yet sent, claiming each packet under a lock, so that the stream is still one
sequence at `rate_pps`, sent in order. Why: where no packet is lost, an event's accuracy is the
widest interval between two sends in its window (drills.measure.send_resolution_s), and a single
sender leaves the path unsampled for as long as its CPU does not run: a hypervisor's vCPU pause
(1.5-8.5 ms traced here, one vCPU at a time: bench/vcpu_pause.py) or an apply's syscall on that
CPU. The second lane then sends on time from the other CPU. A lane held up while it holds the
lock or the GIL (a few tens of microseconds per packet) still holds up both.

A node whose namespace is replaced while the drill runs (a container restored after node-loss
gets a new one) takes its probe sockets along: `reopen(node)` opens them again there and
swaps them under the running threads (see `reopen` for how the swap is made safe); the record,
and its sequence numbers, continue.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from ipaddress import IPv4Address, IPv6Address

from drills import realtime
from drills.backend import SocketOps
from drills.clock import Clock
from drills.records import StreamRecord

_HEADER = struct.Struct("!IIQd")  # tag, magic/version, sequence, send instant (s)
_MAGIC = 0xD5111001
_MAX_DATAGRAM = 65535
DRAIN_S = 0.5  # waited after the last packet, for the echoes still in flight
_MAX_BURST = 256  # packets sent back to back before the stop flag is looked at again
_DONTWAIT = socket.MSG_DONTWAIT
# Sender lanes per stream (see the module's docstring); bench/fault_accuracy.py sets 1 to
# compare with a single sender in the same run.
SENDER_LANES = 2
# How long after a packet's instant a lane other than the first looks whether it went. About the
# first lane's usual wake-up lateness (p99 0.1 ms real-time, on this 2-CPU VM), so that the lanes
# seldom wake together and contend for the GIL; and short, because at a fault's edge the first
# lane often waits for the controller applying the fault on its CPU (higher priority), and the
# edge packet's lateness is then this stagger (bench/fault_accuracy.py: 0.25 ms cost up to 0.6 ms
# of accuracy at the edges).
LANE_STAGGER_S = 0.0001


class _Reopenable:
    """What a stream and an echo share: a socket that `reopen()` may swap under the threads using
    it (the replaced ones kept in `_retiring` until the last thread moves off), and how that ends."""

    _sock: socket.socket

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._swap_lock = threading.Lock()
        self._closing = False
        self._retiring: dict[socket.socket, Retiring] = {}

    def _moved_off(self, sock: socket.socket) -> None:
        """A thread no longer uses `sock` (it holds its replacement)."""
        retiring = self._retiring.get(sock)
        if retiring is not None:
            retiring.release()

    def _close(self, receiver: threading.Thread) -> None:
        """Stop `receiver` (the thread blocked receiving on the socket), then close the socket and
        every one it replaced that some thread never moved off (idempotent)."""
        with self._swap_lock:
            self._closing = True  # no reopen() from here on: the socket below is the last
        self._stop.set()
        # Wakes the receiver blocked in recv (it returns 0 bytes); Linux also reports ENOTCONN
        # for an unconnected UDP socket, after waking it.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if receiver.is_alive():
            receiver.join()
        self._sock.close()
        for retiring in self._retiring.values():  # closing twice is harmless
            retiring.sock.close()


class UdpStream(_Reopenable):
    """One udp-stream probe between two nodes, whose sockets come from `sockets`. `start()`,
    then `stop()` returns the record."""

    def __init__(
        self,
        name: str,
        sockets: SocketOps,
        source: str,
        source_ip: IPv4Address | IPv6Address,
        target: str,
        target_ip: IPv4Address | IPv6Address,
        rate_pps: int,
        size_bytes: int,
        clock: Clock,
        tag: int,
        dscp: int = 0,
        echo_at: tuple[str, int] | None = None,
    ) -> None:
        super().__init__()
        family = socket.AF_INET6 if target_ip.version == 6 else socket.AF_INET
        self.record = StreamRecord(name, rate_pps, size_bytes)
        self._clock = clock
        self._tag = tag
        self._stop_sending = threading.Event()
        self._family, self._dscp = family, dscp
        self._sockets = sockets
        self._source, self._source_ip = source, str(source_ip)
        self._target = target
        # The echo's port is the kernel's choice: several streams may end on the same node.
        # An echo on another host (`echo_at`) is that host's agent's: nothing of it lives here.
        self._echo = UdpEcho(name, sockets, target, target_ip, family) if echo_at is None else None
        try:
            self._sock = self._open_sender()
        except BaseException:
            if self._echo is not None:
                self._echo.stop()
            raise
        # What the send loop uses, published as one tuple so it reads socket and target at once.
        if echo_at is not None:
            echo_address = (str(echo_at[0]), int(echo_at[1]))  # a JSON frame may carry a list
        else:
            assert self._echo is not None
            echo_address = self._echo.address
        self._out: tuple[socket.socket, tuple[str, int]] = (self._sock, echo_address)
        self._receiver = threading.Thread(target=self._receive_loop, name=f"{name}-recv", daemon=True)
        # The sender lanes: SENDER_LANES threads held to distinct CPUs, or one held to none.
        cpus = realtime.lane_cpus(SENDER_LANES) or [-1]
        self.record.lane_cpus, self.record.lane_sent = list(cpus), [0] * len(cpus)
        self._claim = threading.Lock()  # taken to claim, stamp and send the next packet
        self._next_sequence = 0  # the next packet to send, whichever lane sends it
        self._start_s = 0.0  # packet i is due at _start_s + i / rate_pps (set by start())
        self._senders = [
            threading.Thread(target=self._send_lane, args=(lane, cpu), name=f"{name}-send{lane}", daemon=True)
            for lane, cpu in enumerate(cpus)
        ]

    def _open_sender(self) -> socket.socket:
        sock = _bound(self._sockets, self._source, self._family, self._source_ip, 0)
        if self._dscp:
            level, option = (
                (socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
                if self._family == socket.AF_INET6
                else (socket.IPPROTO_IP, socket.IP_TOS)
            )
            try:
                sock.setsockopt(level, option, self._dscp << 2)
            except BaseException:
                sock.close()
                raise
        return sock

    @property
    def echo_at(self) -> tuple[str, int]:
        """Where the packets go to be echoed (address, port) now."""
        return self._out[1]

    def start(self) -> None:
        if self._echo is not None:
            self._echo.start()
        self._receiver.start()
        self._start_s = self._clock.now_s()
        for sender in self._senders:
            sender.start()

    def retarget(self, echo_at: tuple[str, int]) -> None:
        """The echo on another host moved to a new address or port (its node's namespace was
        replaced there): send there from the next packet on."""
        with self._swap_lock:
            if not self._closing:
                self._out = (self._out[0], (str(echo_at[0]), int(echo_at[1])))

    def reopen(self, node: str) -> list[str]:
        """The namespace of `node` was replaced (a new namespace behind the same node): open
        every socket of this stream that lives in that node again, through the same SocketOps
        (which now reach the new namespace), and swap it in under the running threads. Returns
        what was reopened (for the log); nothing when the stream has no socket there or is
        stopping. OSError when a socket cannot be opened (the stream then keeps its old one).

        The swap, without a lock on the hot path: the new socket is registered as replacing the
        old one (`Retiring`, counting the threads that use the old one) and then published by
        one attribute assignment, which the GIL makes atomic. Each thread compares the socket it
        holds with the published one (the send loop before every packet; the receive and echo
        loops after every wake-up, and `shutdown(SHUT_RD)` of the old socket wakes them at once:
        it returns what is still queued first, then 0 bytes), moves to the new one and only then
        releases the old one; the last thread to release it closes it. So no thread ever uses a
        closed socket (whose descriptor number the kernel may already have given to another),
        no echo queued on the old socket is lost, and a packet sent in the instant of the swap
        through the old socket is lost as any packet into a dead node would be. A socket that
        some thread never moved off (it had ended, or was swapped twice meanwhile) is closed by
        `stop()`, after the threads have ended."""
        reopened = []
        with self._swap_lock:  # one reopen at a time, and none once stop() began
            if self._closing:
                return []
            if node == self._target and self._echo is not None:
                reopened += self._echo.reopen(node)
                self._out = (self._out[0], self._echo.address)
            if node == self._source:
                sender = self._open_sender()
                old, self._retiring[self._sock] = self._sock, Retiring(self._sock, users=1 + len(self._senders))
                self._sock = sender
                self._out = (sender, self._out[1])
                wake_receiver(old)
                reopened.append(f"sender {self._source_ip}")
        return reopened

    def stop_sending(self) -> None:
        self._stop_sending.set()

    def stop(self, drain_s: float = DRAIN_S) -> StreamRecord:
        """Stop sending, wait `drain_s` for echoes in flight, close the sockets. The drain is
        waited once the senders have ended, also when `stop_sending` ended it earlier (several
        streams stopped together drain once: the first waits, the others pass 0)."""
        self._stop_sending.set()
        if self._senders[0].ident is not None:  # started
            for sender in self._senders:
                sender.join()
            if drain_s > 0:
                self._clock.sleep_until(self._clock.now_s() + drain_s)
        self._close(self._receiver)  # no reopen() from here on, the echo's included
        if self._echo is not None:
            self._echo.stop()
        return self.record

    def _send_lane(self, lane: int, cpu: int) -> None:
        """One sender lane: at each packet's instant (this lane's stagger later), send every
        packet that is due and that no lane has sent yet (see the module's docstring)."""
        # Due at a fault's edge: on time, ahead of ordinary tasks.
        scheduling = realtime.raise_this_thread()
        if lane == 0:
            self.record.sender_scheduling = scheduling
        if cpu >= 0 and not realtime.hold_this_thread_to(cpu):
            cpu = -1
        self.record.lane_cpus[lane] = cpu
        gap_s, stagger_s = 1.0 / self.record.rate_pps, lane * LANE_STAGGER_S
        padding = b"\0" * max(0, self.record.size_bytes - _HEADER.size)
        # Bound once: this loop runs up to thousands of times a second per stream.
        now_s, sleep_until, stopping = self._clock.now_s, self._clock.sleep_until, self._stop_sending
        sent, lateness, lane_sent = self.record.sent.append, self.record.send_lateness_s.append, self.record.lane_sent
        pack, tag, claim = _HEADER.pack, self._tag, self._claim
        out = self._out
        sendto, target = out[0].sendto, out[1]
        realtime_sender = scheduling.startswith("SCHED_FIFO")
        start_s = self._start_s
        while not stopping.is_set():
            if not sleep_until(start_s + self._next_sequence * gap_s + stagger_s, stopping):
                break
            # Every packet already due goes now, back to back: a sender that fell behind (the
            # GIL, the scheduler) catches up without a wait or a stop check per packet.
            for _burst in range(_MAX_BURST):
                if self._out is not out:  # reopen() swapped the socket or the echo's port
                    previous, out = out[0], self._out
                    sendto, target = out[0].sendto, out[1]
                    if previous is not out[0]:
                        self._moved_off(previous)
                # Claimed, stamped and sent under one lock: the packets leave in the order of
                # their sequence numbers and send instants, whichever lane sends each.
                with claim:
                    sequence = self._next_sequence
                    scheduled = start_s + sequence * gap_s
                    now = now_s()
                    if scheduled > now:
                        break  # the other lane sent it, or it is not due yet
                    self._next_sequence = sequence + 1
                    sent(now)
                    lateness(now - scheduled)
                    # No route / unreachable during a fault: the packet is simply lost. Never
                    # blocking (MSG_DONTWAIT): packets waiting for a neighbour that no longer
                    # answers (a dead VRRP master's MAC) fill the socket's send buffer, and a
                    # blocking send would stall the schedule for seconds; a packet the host
                    # cannot even queue is lost, as on a router.
                    with contextlib.suppress(OSError):
                        sendto(pack(tag, _MAGIC, sequence, now) + padding, _DONTWAIT, target)
                lane_sent[lane] += 1  # this lane's own slot: no other thread writes it
                if realtime_sender and now - scheduled > realtime.BEHIND_S:
                    self.record.sender_scheduling = realtime.lower_this_thread(now - scheduled)
                    realtime_sender = False

    # The receive loop blocks in recv (one system call per packet, no select), as the echo's
    # does: stop() wakes it by shutting its socket down.

    def _receive_loop(self) -> None:
        realtime.raise_this_thread(realtime.RECEIVER_PRIORITY)  # never holds the GIL from a sender for long
        highest = -1
        record = self.record
        received = record.received
        sock, now_s, unpack, stopping = self._sock, self._clock.now_s, _HEADER.unpack_from, self._stop
        recv_into, tag_wanted = sock.recv_into, self._tag
        buffer = bytearray(_MAX_DATAGRAM)
        while not stopping.is_set():
            try:
                size = recv_into(buffer)
            except OSError:  # e.g. ICMP unreachable reported on the socket during a fault
                size = 0
            arrived = now_s()
            if size < _HEADER.size:
                if not size and self._sock is not sock:  # reopen() woke us: move to the new socket
                    previous, sock = sock, self._sock
                    recv_into = sock.recv_into
                    self._moved_off(previous)
                continue
            tag, magic, sequence, _sent = unpack(buffer)
            if tag != tag_wanted or magic != _MAGIC:
                continue
            if sequence in received:
                record.duplicates += 1
                record.duplicate_seqs.append(sequence)
                continue
            received[sequence] = arrived
            if sequence < highest:
                record.reordered += 1
                record.reordered_seqs.append(sequence)
            else:
                highest = sequence


class UdpEcho(_Reopenable):
    """The echo end of udp-streams: a UDP socket opened in `node` through `sockets` and bound to
    `address` (port: the kernel's choice unless given), whose one thread returns every datagram
    to its sender. `start()`, `port`, `stop()`. A stream whose target node is on this host makes
    its own; for one whose source is on another host, this host's agent opens it and hands its
    port to the sender (drills.remote.probe_service)."""

    def __init__(
        self,
        name: str,
        sockets: SocketOps,
        node: str,
        address: IPv4Address | IPv6Address | str,
        family: socket.AddressFamily,
        port: int = 0,
    ) -> None:
        super().__init__()
        self.name = name
        self.node = node
        self._sockets, self._family, self._ip = sockets, family, str(address)
        self._sock = _bound(sockets, node, family, self._ip, port)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._echo_loop, name=f"{name}-echo", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """(address, port) the echo listens on: where a sender sends."""
        return (self._ip, self.port)

    def start(self) -> None:
        self._thread.start()

    def reopen(self, node: str) -> list[str]:
        """The namespace of `node` was replaced: open the echo socket there again and swap it in
        under the running thread (as `UdpStream.reopen` does). Returns what was reopened (for the
        log); nothing when the echo is not in `node` or is stopping. OSError when no socket can
        be opened (the echo keeps its old one)."""
        with self._swap_lock:
            if self._closing or node != self.node:
                return []
            # The same port if the new namespace lets us (it does: it is new), else the kernel's.
            try:
                echo = _bound(self._sockets, self.node, self._family, self._ip, self.port)
            except OSError:
                echo = _bound(self._sockets, self.node, self._family, self._ip, 0)
            old, self._retiring[self._sock] = self._sock, Retiring(self._sock, users=1)
            self._sock = echo
            self.port = echo.getsockname()[1]
            wake_receiver(old)
            return [f"echo {self._ip} port {self.port}"]

    def stop(self) -> None:
        """Stop echoing and close the socket (idempotent)."""
        self._close(self._thread)

    def _echo_loop(self) -> None:
        realtime.raise_this_thread(realtime.RECEIVER_PRIORITY)  # never holds the GIL from a sender for long
        sock, stopping = self._sock, self._stop
        buffer = bytearray(_MAX_DATAGRAM)
        view = memoryview(buffer)
        recvfrom_into, sendto = sock.recvfrom_into, sock.sendto
        while not stopping.is_set():
            try:
                size, peer = recvfrom_into(buffer)
            except OSError:  # e.g. an ICMP error queued on the socket during a fault
                size, peer = 0, None
            if not size and self._sock is not sock:  # reopen() woke us: move to the new socket
                previous, sock = sock, self._sock
                recvfrom_into, sendto = sock.recvfrom_into, sock.sendto
                self._moved_off(previous)
                continue
            if size and peer is not None:
                with contextlib.suppress(OSError):  # never blocking: see _send_lane
                    sendto(view[:size], _DONTWAIT, peer)


class Retiring:
    """A replaced socket, closed by the last of the threads that used it once it moved off."""

    def __init__(self, sock: socket.socket, users: int) -> None:
        self.sock = sock
        self._users = users
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self.sock.close()


def wake_receiver(sock: socket.socket) -> None:
    """Wake a thread blocked receiving on `sock`: once its queue is read, recv returns 0 bytes.
    Linux reports ENOTCONN for an unconnected UDP socket, after shutting it down."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _bound(sockets: SocketOps, node: str, family: socket.AddressFamily, address: str, port: int) -> socket.socket:
    """A UDP socket opened in `node` and bound to address:port there, before the clock starts."""
    sock = sockets.open_socket(node, family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
