"""A few rtnetlink requests built with struct, for the fault engine's hot path.

pyroute2 spends ~0.2-0.3 ms of Python per request (an event loop run, full encode and decode);
setting a link down and reading its carrier back this way costs ~0.05 and ~0.02 ms, which is
what keeps a fault's apply latency under 2 ms at p99 (bench/apply.py measures both). Only the
requests the engine repeats on the clock live here (links, and the static routes a link
revert re-installs) and in tc.py (qdiscs, built on this
socket); everything else goes through pyroute2 in kernel.py.

A failed request raises `NetlinkFailure` (a `BackendError`) carrying the errno and the kernel's
extended-ack message ("Specified qdisc kind is unknown"), so callers can tell causes apart.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from drills.errors import BackendError

NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFINFO = struct.Struct("=BxHiII")  # family, device type, index, flags, change mask
_RTA = struct.Struct("=HH")  # length, type
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an error message
NLA_F_NESTED = 0x8000
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
IFF_UP = 0x1
# Routes (linux/rtnetlink.h): struct rtmsg and the attributes a static route needs.
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
RTM_NEWROUTE = 24
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4  # what pyroute2 marks routes with at deploy: drills' marker (`proto static`)
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 4, 5, 6, 7
IFLA_CARRIER = 33
RECV_BYTES = 1 << 16


class NetlinkFailure(BackendError):
    """The kernel refused a request: `code` is the errno, `kernel_message` its extended ack."""

    def __init__(self, what: str, code: int, kernel_message: str = "") -> None:
        detail = os.strerror(code) + (f" ({kernel_message})" if kernel_message else "")
        super().__init__(f"{what}: {detail}")
        self.code = code
        self.kernel_message = kernel_message


def rta(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    data = _RTA.pack(_RTA.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def attributes(buf: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The attributes in `buf[offset:end]` by type (nested and byte-order flags masked off)."""
    found: dict[int, bytes] = {}
    end = len(buf) if end is None else end
    while offset + _RTA.size <= end:
        length, kind = _RTA.unpack_from(buf, offset)
        if length < _RTA.size:
            break
        found[kind & 0x3FFF] = buf[offset + _RTA.size : offset + length]
        offset += (length + 3) & ~3
    return found


def messages(datagram: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, sequence, whole message) of each message in one datagram."""
    found = []
    offset = 0
    while offset + NLMSG.size <= len(datagram):
        length, kind, flags, sequence, _port = NLMSG.unpack_from(datagram, offset)
        if length < NLMSG.size:
            break
        found.append((kind, flags, sequence, datagram[offset : offset + length]))
        offset += (length + 3) & ~3
    return found


def error_of(message: bytes, flags: int) -> tuple[int, str]:
    """(errno, extended-ack text) of an NLMSG_ERROR message; errno 0 is an ack."""
    (code,) = struct.unpack_from("=i", message, NLMSG.size)
    text = ""
    if code and flags & NLM_F_ACK_TLVS:
        # After the error code: the request's header, and its payload unless capped; then TLVs.
        (request_length,) = struct.unpack_from("=I", message, NLMSG.size + 4)
        skip = NLMSG.size if flags & NLM_F_CAPPED else request_length
        offset = NLMSG.size + 4 + ((skip + 3) & ~3)
        raw = attributes(message, offset).get(NLMSGERR_ATTR_MSG, b"")
        text = raw.rstrip(b"\0").decode(errors="replace")
    return -code, text


def send_acked(
    sock: socket.socket, requests: Sequence[tuple[int, int, bytes, str]], first_seq: int = 1
) -> NetlinkFailure | None:
    """Send `requests` (type, flags with NLM_F_REQUEST and NLM_F_ACK, body, what) in one datagram,
    numbered from `first_seq`, and read every ack back: the first refusal (the kernel goes on with
    the rest of a datagram after an error), or None. The acks must fit the socket's receive
    buffer: callers send a few hundred at most."""
    parts = []
    for seq, (kind, flags, body, _what) in enumerate(requests, start=first_seq):
        parts.append(NLMSG.pack(NLMSG.size + len(body), kind, flags, seq, 0) + body)
    first: NetlinkFailure | None = None
    pending = set(range(first_seq, first_seq + len(requests)))
    try:
        sock.send(b"".join(parts))
        while pending:
            for kind, flags, seq, message in messages(sock.recv(RECV_BYTES)):
                if kind != NLMSG_ERROR or seq not in pending:
                    continue
                pending.discard(seq)
                code, text = error_of(message, flags)
                if code and first is None:
                    first = NetlinkFailure(requests[seq - first_seq][3], code, text)
    except OSError as exc:
        raise BackendError(f"{requests[0][3]} (and {len(requests) - 1} more requests): {exc}") from exc
    return first


class RawLinks:
    """An rtnetlink socket bound to one namespace (create it in a thread inside that namespace,
    or pass a socket made there), for link up/down and state read-back."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.bind((0, 0))
        with contextlib.suppress(OSError):  # the kernel's own words in errors; old kernels lack it
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self._seq = 0

    @staticmethod
    def new_socket() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self._seq += 1
        header = NLMSG.pack(NLMSG.size + len(body), msg_type, flags | NLM_F_REQUEST, self._seq, 0)
        self._sock.send(header + body)
        return self._seq

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> bytes:
        """Send one request; return its reply (b"" for a bare ack). NetlinkFailure on an error."""
        try:
            sequence = self._send(msg_type, flags, body)
            found = b""
            while True:
                for kind, msg_flags, seq, message in messages(self._sock.recv(RECV_BYTES)):
                    if seq != sequence:
                        continue  # a late answer to an earlier request
                    if kind == NLMSG_ERROR:
                        code, text = error_of(message, msg_flags)
                        if code:
                            raise NetlinkFailure(what, code, text)
                        return found
                    if not flags & NLM_F_ACK:
                        return message
                    found = message
        except OSError as exc:
            raise BackendError(f"{what}: {exc}") from exc

    def dump(self, msg_type: int, body: bytes, what: str) -> list[bytes]:
        """Every message of a dump request, each as its own bytes. NetlinkFailure on an error."""
        try:
            sequence = self._send(msg_type, NLM_F_DUMP, body)
            found: list[bytes] = []
            while True:
                for kind, msg_flags, seq, message in messages(self._sock.recv(RECV_BYTES)):
                    if seq != sequence:
                        continue
                    if kind == NLMSG_DONE:
                        return found
                    if kind == NLMSG_ERROR:
                        code, text = error_of(message, msg_flags)
                        if code:
                            raise NetlinkFailure(what, code, text)
                        return found
                    found.append(message)
        except OSError as exc:
            raise BackendError(f"{what}: {exc}") from exc

    def set_link(self, index: int, up: bool) -> None:
        """Set interface `index` administratively up or down; returns once the kernel acked."""
        body = IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP)
        self.request(RTM_NEWLINK, NLM_F_ACK, body, f"set link {index} {'up' if up else 'down'}")

    def link_state(self, index: int) -> tuple[bool, bool]:
        """(administratively up, has carrier) of interface `index`."""
        reply = self.request(RTM_GETLINK, 0, IFINFO.pack(0, 0, index, 0, 0), f"read link {index}")
        _family, _type, _index, flags, _change = IFINFO.unpack_from(reply, NLMSG.size)
        carrier = attributes(reply, NLMSG.size + IFINFO.size).get(IFLA_CARRIER, b"\0")
        return bool(flags & IFF_UP), carrier != b"\0"

    def replace_routes(self, routes: Sequence[RouteSpec], chunk: int = 256) -> None:
        """`ip route replace` of each static route (RTM_NEWROUTE, main table, static protocol, as
        deploy installs it, so a re-installed route reads back as it was), `chunk` to a datagram
        and acked together: a routed node's hundreds of routes in a few round trips, not one each."""
        failure: NetlinkFailure | None = None
        for start in range(0, len(routes), chunk):
            requests = []
            for route in routes[start : start + chunk]:
                body, what = route_request(route.destination, route.gateway, route.oif_index, route.metric, route.source)
                requests.append((RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body, what))
            failure = send_acked(self._sock, requests, self._seq + 1) or failure
            self._seq += len(requests)
        if failure is not None:
            raise failure

    def close(self) -> None:
        self._sock.close()


@dataclass(frozen=True)
class RouteSpec:
    """A static route in the kernel's terms: the outgoing interface is an index."""

    destination: IPv4Network | IPv6Network
    gateway: IPv4Address | IPv6Address | None
    oif_index: int
    metric: int
    source: IPv4Address | IPv6Address | None = None


def route_request(
    destination: IPv4Network | IPv6Network,
    gateway: IPv4Address | IPv6Address | None,
    oif_index: int | None,
    metric: int,
    source: IPv4Address | IPv6Address | None,
) -> tuple[bytes, str]:
    """RTM_NEWROUTE's body for a static route (main table, static protocol, as pyroute2's
    route("replace") built it at deploy) and the words naming it in an error."""
    family = socket.AF_INET if destination.version == 4 else socket.AF_INET6
    scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
    body = _RTMSG.pack(family, destination.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST, 0)
    body += rta(RTA_DST, destination.network_address.packed)
    body += rta(RTA_PRIORITY, struct.pack("=I", metric))
    if oif_index is not None:
        body += rta(RTA_OIF, struct.pack("=i", oif_index))
    if gateway is not None:
        body += rta(RTA_GATEWAY, gateway.packed)
    if source is not None:
        body += rta(RTA_PREFSRC, source.packed)
    return body, f"replace route {destination} via {gateway or oif_index} metric {metric}"
