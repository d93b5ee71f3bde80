"""Netlink handles of a run's namespaces, opened once and kept: an operation on the drill clock
costs a request and a read-back, not a socket, a namespace switch or an index lookup."""

from __future__ import annotations

from typing import Any

from drills.netns import kernel
from drills.netns.rtnl import RawLinks
from drills.scenario.resolved import Topology


class Handles:
    """One rtnetlink handle per namespace, opened lazily and kept for the whole drill."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self._namespaces = namespaces  # node -> namespace
        self._open: dict[str, Any] = {}
        self._raw: dict[str, RawLinks] = {}
        self._indices: dict[tuple[str, str], int] = {}

    def of(self, node: str) -> Any:
        if node not in self._open:
            self._open[node] = kernel.open_netlink(self._namespaces[node])
        return self._open[node]

    def raw(self, node: str) -> RawLinks:
        """The struct-built rtnetlink socket of a node: link up/down on the clock."""
        if node not in self._raw:
            namespace = self._namespaces[node]
            self._raw[node] = RawLinks(kernel.run_in_namespace(namespace, RawLinks.new_socket))
        return self._raw[node]

    def index(self, node: str, ifname: str) -> int:
        """Interface index, looked up once: a lookup costs as much as the change itself."""
        key = (node, ifname)
        if key not in self._indices:
            self._indices[key] = kernel.link_index(self.of(node), ifname)
        return self._indices[key]

    def warm(self, topology: Topology) -> None:
        """Open every handle and look up every link interface before the clock starts."""
        ends = [end for link in topology.links for end in (link.a, link.b)]
        # A segment's members, and their ports on its bridge (a degrade puts qdiscs on those).
        ports = [s.port(m.endpoint) for s in topology.segments for m in s.members]
        ends += [end for port in ports for end in (port.a, port.b)]
        for end in ends:
            self.index(end.node, end.name)
            self.raw(end.node)

    def forget(self, node: str) -> None:
        """Close a node's handles and drop its cached indices: its namespace was replaced (a
        restarted container gets a new one); the next use opens them in the new namespace."""
        if node in self._open:
            self._open.pop(node).close()
        if node in self._raw:
            self._raw.pop(node).close()
        for key in [k for k in self._indices if k[0] == node]:
            del self._indices[key]

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        for raw in self._raw.values():
            raw.close()
        self._open.clear()
        self._raw.clear()
