"""Receiving UDP in tests without losing packets or time to a stalled Python thread.

A test's receiving thread shares a loaded machine (and, in the VM lane, software emulation):
it may not run for a while. `receiver` gives its socket room for every packet a test sends
(SO_RCVBUFFORCE, past net.core.rmem_max, root only) and has the kernel stamp each datagram on
arrival (SO_TIMESTAMPNS, CLOCK_REALTIME); `recv_stamped` returns that stamp, so arrival instants
and rates do not depend on when the thread got to read them.
"""

from __future__ import annotations

import socket
import struct
import time

SO_RCVBUFFORCE = 33  # asm-generic/socket.h
SO_TIMESTAMPNS = 35  # and SCM_TIMESTAMPNS
RCVBUF_BYTES = 8 << 20  # the kernel doubles it: 16 MB, > 10,000 small or 5,000 full-size datagrams
_TIMESPEC = struct.Struct("qq")
_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def receiver(sock: socket.socket) -> socket.socket:
    """`sock`, given a large buffer and kernel receive timestamps."""
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def recv_stamped(sock: socket.socket, size: int = 4096) -> tuple[bytes, object, int]:
    """One datagram, its sender, and the kernel's arrival instant (ns, CLOCK_REALTIME; the time
    it was read when the kernel gave no stamp)."""
    data, ancillary, _flags, peer = sock.recvmsg(size, _SPACE)
    at_ns = time.time_ns()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
            at_ns = sec * 1_000_000_000 + nsec
    return data, peer, at_ns
