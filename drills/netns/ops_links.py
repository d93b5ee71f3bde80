"""Link operations on namespaces: admin state and carrier on the struct-built rtnetlink socket
(drills.netns.rtnl: one request, no pyroute2 parsing on the clock), addresses and routes."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Interface, IPv6Interface

from drills.backend import LinkState
from drills.errors import BackendError
from drills.netns import kernel
from drills.netns.ops_base import OpsBase
from drills.netns.rtnl import RouteSpec
from drills.scenario.resolved import Route


class LinkOpsMixin(OpsBase):
    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        handles = self.handles
        handles.raw(node).set_link(handles.index(node, ifname), up=up)

    def link_state(self, node: str, ifname: str) -> LinkState:
        handles = self.handles
        admin_up, carrier = handles.raw(node).link_state(handles.index(node, ifname))
        return LinkState(admin_up, carrier)

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        handles = self.handles
        kernel.add_address(handles.of(node), ifname, address, index=handles.index(node, ifname))

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        handles = self.handles
        specs = [
            RouteSpec(
                route.destination,
                route.gateway,
                handles.index(node, route.device) if route.device else _gateway_index(self, node, route),
                route.metric,
                route.source,
            )
            for route in routes
        ]
        handles.raw(node).replace_routes(specs)


def _gateway_index(ops: LinkOpsMixin, node: str, route: Route) -> int:
    """The interface of `node` whose subnet holds the route's gateway."""
    for iface in ops.topology.node(node).interfaces:
        for address in (iface.ipv4, iface.ipv6):
            if address is not None and route.gateway is not None and route.gateway in address.network:
                return ops.handles.index(node, iface.name)
    raise BackendError(f"node {node}: no interface reaches gateway {route.gateway} of route {route.destination}")
