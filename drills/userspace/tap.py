"""TAP devices and the small kernel calls the relay needs (ioctls, rtnetlink link events).

A TAP is created by opening /dev/net/tun and naming it with TUNSETIFF: the device is born in
the network namespace of the *thread* that opened the file, so `open_tap` runs in a thread that
has entered the node's namespace (`kernel.run_in_namespace`) and the device never appears in the
host's namespace. It is not persistent: it disappears when the last descriptor closes, so a
relay killed by SIGKILL leaves no device behind.

Carrier follows veth semantics: the relay sets a TAP's carrier (TUNSETCARRIER) to the
administrative state of the far end, which it learns from an rtnetlink socket opened in the far
end's namespace and subscribed to link events.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

TUN_DEVICE = "/dev/net/tun"
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_UP = 0x1
TUNSETIFF = 0x400454CA
TUNSETCARRIER = 0x400454E2
SIOCGIFFLAGS = 0x8913
SIOCGIFINDEX = 0x8933
NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTM_NEWLINK = 16
_IFREQ = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


def open_tap(name: str) -> int:
    """Create TAP `name` in the calling thread's namespace; returns its descriptor (inheritable
    is left off: the relay gets it through `pass_fds`)."""
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_carrier(tap_fd: int, on: bool) -> None:
    fcntl.ioctl(tap_fd, TUNSETCARRIER, struct.pack("i", 1 if on else 0))


def link_events_socket() -> socket.socket:
    """An rtnetlink socket of the calling thread's namespace, subscribed to link events."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.bind((0, RTMGRP_LINK))
    return sock


def interface_index(sock_fd: int, name: str) -> int:
    """Index of `name` in the namespace of socket `sock_fd` (any socket: the ioctl falls back
    to the device table of the socket's namespace)."""
    raw = fcntl.ioctl(sock_fd, SIOCGIFINDEX, _IFREQ_INT.pack(name.encode(), 0))
    return int(_IFREQ_INT.unpack(raw)[1])


def admin_up(sock_fd: int, name: str) -> bool:
    """Whether `name` is administratively up, in the namespace of socket `sock_fd`."""
    raw = fcntl.ioctl(sock_fd, SIOCGIFFLAGS, _IFREQ.pack(name.encode(), 0))
    return bool(_IFREQ.unpack(raw)[1] & IFF_UP)


def link_changes(data: bytes) -> list[tuple[int, bool]]:
    """(interface index, admin up) of every RTM_NEWLINK message in one netlink read."""
    found = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind == RTM_NEWLINK and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, offset + _NLMSGHDR.size)
            found.append((index, bool(flags & IFF_UP)))
        offset += (length + 3) & ~3
    return found
