"""Deploy's rtnetlink requests built with struct and sent in batches: many requests in one
datagram, their acks read back together.

Through pyroute2 each request costs ~0.2-0.3 ms of Python (encode, an event-loop turn, decode)
and a round trip; deploy sends ~8 of them per node (a veth, addresses, MTU, links up, routes),
which made most of its ~3.7 ms per node (bench/results/profile.md). Batched, the kernel does the
same work in the same order; Python builds a few hundred bytes per node. The messages are the
ones pyroute2 sent (same flags, same attributes), so the testbed is the same
(bench/profile_deploy.py checks it, variant "old").
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable, Sequence
from ipaddress import IPv4Interface, IPv6Interface

from drills.netns import rtnl
from drills.netns.rtnl import IFINFO, NLM_F_CREATE, NLM_F_REPLACE, RTM_NEWLINK
from drills.scenario.resolved import Link, Node, Route

_IFADDR = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTM_NEWADDR = 20
NLM_F_EXCL = 0x200
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NETLINK_CAP_ACK = 10
# Requests per datagram: their acks (36 bytes each, errors capped to the request's header)
# must fit the socket's receive buffer (~200 KiB by default), and each request's namespace
# descriptors stay open only for its chunk (well under the default limit of 1,024 files).
CHUNK = 256
TIMEOUT_S = 30.0  # a kernel that does not answer a batch in this time is stuck: fail, not hang


class Batch:
    """Requests to send together; `send` raises the first refused one's error after reading
    every ack (the kernel goes on with the rest of a datagram after an error)."""

    def __init__(self) -> None:
        self._requests: list[tuple[int, int, bytes, str]] = []

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Queue request `kind` (an RTM_* type) with `body`; `what` names it in an error."""
        self._requests.append((kind, flags | rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK, body, what))

    def send(self, sock: socket.socket, chunk: int = CHUNK) -> None:
        """Send every request, `chunk` per datagram, each datagram's acks read before the next."""
        failure: rtnl.NetlinkFailure | None = None
        for start in range(0, len(self._requests), chunk):
            failure = rtnl.send_acked(sock, self._requests[start : start + chunk]) or failure
        self._requests.clear()
        if failure is not None:
            raise failure


def open_socket() -> socket.socket:
    """A raw rtnetlink socket in the calling thread's namespace, with the kernel's own words in
    errors and errors' acks capped to the request's header."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.settimeout(TIMEOUT_S)
        sock.bind((0, 0))
        for option in (rtnl.NETLINK_EXT_ACK, NETLINK_CAP_ACK):
            with contextlib.suppress(OSError):  # old kernels: plain errors, longer acks
                sock.setsockopt(rtnl.SOL_NETLINK, option, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return IFINFO.pack(0, 0, index, flags, change)


def _name(name: str) -> bytes:
    return rtnl.rta(IFLA_IFNAME, name.encode() + b"\0")


def create_veths(links: Sequence[Link], ns: dict[str, str], path_of: Callable[[str], str]) -> None:
    """Create a veth pair per link, each end born in its node's namespace (`ns`: node ->
    namespace name; `path_of`: namespace name -> its file), from the calling thread's namespace."""
    sock = open_socket()
    try:
        for start in range(0, len(links), CHUNK):
            chunk = links[start : start + CHUNK]
            names = {ns[end.node] for link in chunk for end in (link.a, link.b)}
            fds: dict[str, int] = {}
            try:
                for name in names:
                    fds[name] = os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC)
                batch = Batch()
                for link in chunk:
                    fd_a, fd_b = fds[ns[link.a.node]], fds[ns[link.b.node]]
                    peer = _ifinfo() + _name(link.b.name) + rtnl.rta(IFLA_NET_NS_FD, struct.pack("=I", fd_b))
                    info = rtnl.rta(IFLA_INFO_KIND, b"veth") + rtnl.rta(
                        IFLA_INFO_DATA, rtnl.rta(VETH_INFO_PEER, peer)
                    )
                    body = (
                        _ifinfo()
                        + _name(link.a.name)
                        + rtnl.rta(IFLA_NET_NS_FD, struct.pack("=I", fd_a))
                        + rtnl.rta(IFLA_LINKINFO, info)
                    )
                    what = f"create veth {ns[link.a.node]}:{link.a.name} <-> {ns[link.b.node]}:{link.b.name}"
                    batch.add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, what)
                batch.send(sock, chunk=len(chunk))
            finally:
                for fd in fds.values():
                    os.close(fd)
    finally:
        sock.close()


def _address(index: int, address: IPv4Interface | IPv6Interface) -> bytes:
    """RTM_NEWADDR's body, as pyroute2's addr("replace", index, address, prefixlen) builds it."""
    packed = address.ip.packed
    if address.version == 4:
        head = _IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, 0, index)
        return head + rtnl.rta(IFA_LOCAL, packed) + rtnl.rta(IFA_ADDRESS, packed)
    return _IFADDR.pack(socket.AF_INET6, address.network.prefixlen, 0, 0, index) + rtnl.rta(IFA_ADDRESS, packed)


def configure(node: Node, sock: socket.socket, index_of: Callable[[str], int]) -> None:
    """A node's user sysctls, then lo up with its loopback address, every interface's
    addresses, MTU and up, as one batch. Runs in a thread inside the node's namespace (`sock`
    opened there; `index_of`: if_nametoindex there)."""
    from drills.netns import kernel  # sysctl writes: the namespace thread's /proc/sys

    for key, value in node.sysctls:
        kernel.write_sysctl(key, value)
    batch = Batch()
    replace = NLM_F_CREATE | NLM_F_REPLACE
    lo = index_of("lo")
    batch.add(RTM_NEWLINK, 0, _ifinfo(lo, rtnl.IFF_UP, rtnl.IFF_UP), "set lo up")
    if node.loopback is not None:
        batch.add(RTM_NEWADDR, replace, _address(lo, node.loopback), f"add address {node.loopback} to lo")
    for iface in node.interfaces:
        index = index_of(iface.name)
        for address in (iface.ipv4, iface.ipv6):
            if address is not None:
                batch.add(RTM_NEWADDR, replace, _address(index, address), f"add address {address} to {iface.name}")
        if iface.mtu is not None:
            mtu = _ifinfo(index) + rtnl.rta(IFLA_MTU, struct.pack("=I", iface.mtu))
            batch.add(RTM_NEWLINK, 0, mtu, f"set {iface.name} mtu {iface.mtu}")
        batch.add(RTM_NEWLINK, 0, _ifinfo(index, rtnl.IFF_UP, rtnl.IFF_UP), f"set {iface.name} up")
    batch.send(sock)


def install_routes(routes: Sequence[Route], sock: socket.socket, index_of: Callable[[str], int]) -> None:
    """`ip route replace` of each static route, as one batch (the same message the fault
    engine's `rtnl.RawLinks.replace_routes` sends when it re-installs them)."""
    batch = Batch()
    for route in routes:
        index = index_of(route.device) if route.device is not None else None
        body, what = rtnl.route_request(route.destination, route.gateway, index, route.metric, route.source)
        batch.add(rtnl.RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body, what)
    batch.send(sock)
