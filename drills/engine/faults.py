"""Faults as apply/confirm/revert on netlink handles kept open in each node's namespace.

Handles are opened before the timeline starts, so applying a fault costs one netlink request
and one read-back, not a process or a namespace switch. "Confirmed" means the kernel shows the
new state on both sides: the downed end is administratively down and its peer has lost carrier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drills.errors import BackendError
from drills.netns import kernel
from drills.netns.backend import install_routes
from drills.scenario.resolved import Interface, Link, Topology


class Handles:
    """One rtnetlink handle per namespace, opened lazily and kept for the whole drill."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self._namespaces = namespaces  # node -> namespace
        self._open: dict[str, Any] = {}
        self._indices: dict[tuple[str, str], int] = {}

    def of(self, node: str) -> Any:
        if node not in self._open:
            self._open[node] = kernel.open_netlink(self._namespaces[node])
        return self._open[node]

    def index(self, node: str, ifname: str) -> int:
        """Interface index, looked up once: a lookup costs as much as the change itself."""
        key = (node, ifname)
        if key not in self._indices:
            self._indices[key] = kernel.link_index(self.of(node), ifname)
        return self._indices[key]

    def warm(self, topology: Topology) -> None:
        """Open every handle and look up every link interface before the clock starts."""
        for link in topology.links:
            for end in (link.a, link.b):
                self.index(end.node, end.name)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


def find_link(topology: Topology, ref: str) -> Link:
    for link in topology.links:
        if ref in (link.name, link.a.endpoint, link.b.endpoint):
            return link
    raise KeyError(ref)


@dataclass(frozen=True)
class LinkDown:
    """Carrier loss on a link: both ends administratively down (a fibre cut), or one end."""

    topology: Topology
    link: Link
    ends: tuple[Interface, ...]

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> LinkDown:
        link = find_link(topology, step.link)
        if step.end is None:
            return cls(topology, link, (link.a, link.b))
        end = link.a if step.end == link.a.endpoint else link.b
        return cls(topology, link, (end,))

    def describe(self, reverted: bool = False) -> str:
        return f"link {self.link.name}: {', '.join(e.endpoint for e in self.ends)} {'up again' if reverted else 'down'}"

    def apply(self, handles: Handles) -> None:
        for end in self.ends:
            kernel.set_link(handles.of(end.node), end.name, up=False, index=handles.index(end.node, end.name))
        self._confirm(handles, down=True)

    def revert(self, handles: Handles) -> None:
        for end in self.ends:
            kernel.set_link(handles.of(end.node), end.name, up=True, index=handles.index(end.node, end.name))
        self._confirm(handles, down=False)
        # Setting an interface down made the kernel drop the static routes through it; a
        # router's configuration would bring them back with the interface.
        for end in self.ends:
            node = end.node

            def index_of(ifname: str, node: str = node) -> int:
                return handles.index(node, ifname)

            install_routes(self.topology.node(node), handles.of(node), index_of)

    def _confirm(self, handles: Handles, *, down: bool) -> None:
        for end in (self.link.a, self.link.b):
            state = kernel.link_state(handles.of(end.node), end.name, handles.index(end.node, end.name))
            if down and state.carrier:
                raise BackendError(f"{end.endpoint} still has carrier after link-down; the fault did not take effect")
            if not down and not (state.admin_up and state.carrier):
                raise BackendError(f"{end.endpoint} is not up with carrier after reverting link-down")
