"""Probe sockets in namespaces: a socket is created by a thread that entered the node's
namespace, and lives there whatever thread uses it afterwards."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from drills.netns import kernel
from drills.netns.ops_base import OpsBase

T = TypeVar("T")


class SocketOpsMixin(OpsBase):
    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        return kernel.run_in_namespace(self.namespaces[node], lambda: socket.socket(family, kind, proto))

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        return kernel.run_in_namespace(self.namespaces[node], fn)
