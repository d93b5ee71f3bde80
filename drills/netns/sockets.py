"""Probe sockets in namespaces: a socket is created by a thread that entered the node's
namespace, and lives there whatever thread uses it afterwards."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import TypeVar

from drills.netns import kernel
from drills.netns.ops_base import OpsBase

T = TypeVar("T")


class SocketOpsMixin(OpsBase):
    def open_socket(
        self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0
    ) -> socket.socket:
        return kernel.run_in_namespace(self.namespaces[node], lambda: socket.socket(family, kind, proto))

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        return kernel.run_in_namespace(self.namespaces[node], fn)


class NamespaceSockets:
    """The seam's SocketOps over a plain node -> namespace map, for what runs probes without a
    deployed drill (tests and benches that build their own namespaces). A node may be pointed
    at another namespace (`namespaces[node] = ...`): the next socket opens there."""

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.namespaces = dict(namespaces)

    def open_socket(
        self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0
    ) -> socket.socket:
        return self.run_in_node(node, lambda: socket.socket(family, kind, proto))

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        return kernel.run_in_namespace(self.namespaces[node], fn)
