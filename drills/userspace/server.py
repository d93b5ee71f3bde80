"""The relay's side of the control channel: accept, check the peer, read, answer, never block.

The relay is one loop that also forwards every frame of its link, so nothing here may wait on
a client: every socket is non-blocking, replies queue in a bounded per-client outbox flushed
when the socket takes them, and a client that exceeds a bound is dropped, never waited for:

- a peer whose SO_PEERCRED uid is neither root nor the relay's own is refused on accept (the
  socket's 0700 directory already keeps others out; this holds even if the directory is opened);
- at most `control.MAX_CONNECTIONS` clients at once: one more is refused on accept;
- a request line longer than `protocol.MAX_MESSAGE_BYTES` drops its client;
- replies waiting beyond `MAX_OUTBOX_BYTES` (a client that sends and never reads) drop it;
- at most `REQUESTS_PER_WAKE` requests of one client are answered per pass of the loop, so a
  burst delays the link's frames by microseconds, not by the length of the burst.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass, field

from drills.userspace import control, protocol

MAX_OUTBOX_BYTES = 256 * 1024  # replies a client may leave unread (a `get` is ~1 KiB) before it is dropped
REQUESTS_PER_WAKE = 16
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass
class ControlCounters:
    """What the control channel refused: shown by `stats` beside the links' counters."""

    accepted: int = 0
    refused_peer: int = 0  # SO_PEERCRED uid neither root nor ours
    refused_full: int = 0  # MAX_CONNECTIONS already served
    dropped: int = 0  # a bound exceeded, or the client went away mid-reply
    errors: int = 0  # requests answered with an error


@dataclass
class _Client:
    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)


class ControlServer:
    """The listening socket and its clients, driven by the relay's select loop."""

    def __init__(self, listener: socket.socket, relay: protocol.Controlled) -> None:
        self.listener = listener
        self.listener.setblocking(False)
        self.relay = relay
        self.counters = ControlCounters()
        self.allowed_uids = {0, os.geteuid()}
        self._clients: dict[int, _Client] = {}
        self._listen_fd = listener.fileno()
        self._pending: set[int] = set()  # clients with a complete request read (kept, not scanned for)

    # ------------------------------------------------------------------ what to wait for

    def readers(self) -> list[int]:
        """Descriptors to select for reading: clients with room to read into, then the listener.
        select keeps this order: clients that left are gone before newcomers are counted."""
        if not self._clients:  # the usual case, on every pass of the packet loop: keep it cheap
            return [self._listen_fd]
        clients = [fd for fd, c in self._clients.items() if b"\n" not in c.inbox and len(c.outbox) < MAX_OUTBOX_BYTES]
        return [*clients, self._listen_fd]

    def writers(self) -> list[int]:
        """Clients with replies waiting for room in their socket."""
        if not self._clients:
            return []
        return [fd for fd, c in self._clients.items() if c.outbox]

    def busy(self) -> bool:
        """True while a client has requests read but not answered (the loop must not sleep)."""
        return bool(self._pending)

    # ------------------------------------------------------------------ events

    def readable(self, fd: int) -> None:
        if fd == self._listen_fd:
            self._accept()
        elif fd in self._clients:
            self._receive(self._clients[fd])

    def writable(self, fd: int) -> None:
        if fd in self._clients:
            self._flush(self._clients[fd])

    def answer_pending(self) -> None:
        """Answer up to REQUESTS_PER_WAKE complete requests of each client."""
        for fd in list(self._pending):
            client = self._clients[fd]
            for _ in range(REQUESTS_PER_WAKE):
                line, newline, rest = client.inbox.partition(b"\n")
                if not newline:
                    break
                client.inbox[:] = rest
                try:
                    reply = protocol.answer(bytes(line), self.relay)
                except Exception as exc:  # a bug in answer must not stop the link's wire
                    # protocol.answer is fuzzed never to raise (tests/test_relay_protocol.py); this
                    # is the relay's last line of defence, not a path the tests expect to take.
                    reply = protocol.error(f"internal error in the relay ({type(exc).__name__})")
                if reply.startswith(b'{"ok":false'):
                    self.counters.errors += 1
                client.outbox += reply
            if b"\n" not in client.inbox:
                self._pending.discard(fd)
            if client.outbox:
                self._flush(client)

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client, counted=False)
        self.listener.close()

    # ------------------------------------------------------------------ internals

    def _accept(self) -> None:
        # One connection a wake-up: the loop comes back at once for the next, having first seen
        # which clients left (readers() lists them before the listener), so a slot freed before
        # a connect is always free for it.
        try:
            conn, _ = self.listener.accept()
        except OSError:  # EAGAIN, EMFILE, ECONNABORTED...: the pending connection waits or is gone
            return
        conn.setblocking(False)
        _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        if uid not in self.allowed_uids:
            self.counters.refused_peer += 1
            self._refuse(conn, f"uid {uid} may not control this relay (root only)")
        elif len(self._clients) >= control.MAX_CONNECTIONS:
            self.counters.refused_full += 1
            self._refuse(conn, f"{control.MAX_CONNECTIONS} control clients already connected")
        else:
            self.counters.accepted += 1
            self._clients[conn.fileno()] = _Client(conn)

    def _refuse(self, conn: socket.socket, why: str) -> None:
        with contextlib.suppress(OSError):
            conn.send(protocol.error(why))  # non-blocking: a fresh socket has room; if not, no matter
        conn.close()

    def _receive(self, client: _Client) -> None:
        room = protocol.MAX_MESSAGE_BYTES - len(client.inbox)
        try:
            data = client.sock.recv(max(room, 1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client, counted=False)
            return
        client.inbox += data
        if b"\n" in data:
            self._pending.add(client.sock.fileno())
        elif len(client.inbox) >= protocol.MAX_MESSAGE_BYTES:
            client.outbox += protocol.error(f"request over {protocol.MAX_MESSAGE_BYTES} bytes: connection closed")
            self._flush(client)
            self._drop(client)

    def _flush(self, client: _Client) -> bool:
        """Send what the socket takes now; False when the client was dropped."""
        try:
            sent = client.sock.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(client)
            return False
        del client.outbox[:sent]
        if len(client.outbox) > MAX_OUTBOX_BYTES:
            self._drop(client)
            return False
        return True

    def _drop(self, client: _Client, *, counted: bool = True) -> None:
        self._pending.discard(client.sock.fileno())
        if self._clients.pop(client.sock.fileno(), None) is not None and counted:
            self.counters.dropped += 1
        client.sock.close()
