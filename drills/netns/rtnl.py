"""A few rtnetlink requests built with struct, for the fault engine's hot path.

pyroute2 spends ~0.2-0.3 ms of Python per request (an event loop run, full encode and decode);
setting a link down and reading its carrier back this way costs ~0.05 and ~0.02 ms, which is
what keeps a fault's apply latency under 2 ms at p99 (bench/apply.py measures both). Only the
requests the engine repeats on the clock live here; everything else goes through pyroute2 in
kernel.py.
"""

from __future__ import annotations

import os
import socket
import struct

from drills.errors import BackendError

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # family, device type, index, flags, change mask
_RTA = struct.Struct("=HH")  # length, type
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
IFF_UP = 0x1
IFLA_CARRIER = 33


def _attributes(buf: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _RTA.size <= len(buf):
        length, kind = _RTA.unpack_from(buf, offset)
        if length < _RTA.size:
            break
        found[kind & 0x3FFF] = buf[offset + _RTA.size : offset + length]
        offset += (length + 3) & ~3
    return found


class RawLinks:
    """An rtnetlink socket bound to one namespace (create it in a thread inside that namespace,
    or pass a socket made there), for link up/down and state read-back."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.bind((0, 0))
        self._seq = 0

    @staticmethod
    def new_socket() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)

    def _request(self, msg_type: int, flags: int, body: bytes, what: str) -> bytes:
        """Send one request; return its reply (b"" for a bare ack). BackendError on an error."""
        self._seq += 1
        header = _NLMSG.pack(_NLMSG.size + len(body), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        try:
            self._sock.send(header + body)
            found = b""
            while True:
                reply = self._sock.recv(65536)
                _length, kind, _flags, sequence, _port = _NLMSG.unpack_from(reply)
                if sequence != self._seq:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", reply, _NLMSG.size)
                    if code:
                        raise BackendError(f"{what}: {os.strerror(-code)}")
                    return found
                if not flags & NLM_F_ACK:
                    return reply
                found = reply
        except OSError as exc:
            raise BackendError(f"{what}: {exc}") from exc

    def set_link(self, index: int, up: bool) -> None:
        """Set interface `index` administratively up or down; returns once the kernel acked."""
        body = _IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP)
        self._request(RTM_NEWLINK, NLM_F_ACK, body, f"set link {index} {'up' if up else 'down'}")

    def link_state(self, index: int) -> tuple[bool, bool]:
        """(administratively up, has carrier) of interface `index`."""
        reply = self._request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, index, 0, 0), f"read link {index}")
        _family, _type, _index, flags, _change = _IFINFO.unpack_from(reply, _NLMSG.size)
        carrier = _attributes(reply, _NLMSG.size + _IFINFO.size).get(IFLA_CARRIER, b"\0")
        return bool(flags & IFF_UP), carrier != b"\0"

    def close(self) -> None:
        self._sock.close()
