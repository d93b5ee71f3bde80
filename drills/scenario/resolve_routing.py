"""The topology's `routing:` resolved into each node's routes (`static-shortest-path`) or FRR
services (`ospf`), once the nodes, links and addresses are built.

Written routes stay in both modes: with `static-shortest-path` a written route wins for its
prefix (no route to that prefix is computed at that node); with `ospf` they are installed beside
zebra's (for the same prefix the kernel prefers the lower metric: a written route's 0 below
zebra's 20, unless written higher).
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from typing import Any

from drills.scenario import daemons, routing, routing_ospf
from drills.scenario import model_topology as model
from drills.scenario.reporter import Reporter
from drills.scenario.resolved import IPAddress, Node, Topology
from drills.scenario.yamlpos import KeyPath

_BASE: KeyPath = ("topology",)


class RoutingResolver(Reporter):
    def routing(self, topo: model.Topology, topology: Topology, probes: list[tuple[int, Any]]) -> Topology:
        """`topology` with the routes or daemons that `topo.routing` asks for."""
        if topo.routing is None:
            if topo.routing_timers is not None:
                self.err((*_BASE, "routing_timers"), "`routing_timers` applies to `routing: ospf`; add it, or remove the timers", key=True)
            return topology
        parts = routing.Graph.of(topology).components()
        if len(parts) > 1:
            self.err((*_BASE, "routing"), routing.disconnected_message(parts))
            return topology
        if topo.routing == "static-shortest-path":
            if len(topology.nodes) > routing.MAX_STATIC_NODES:
                self.err(
                    (*_BASE, "routing"),
                    f"static-shortest-path computes N² routes, and this topology has {len(topology.nodes):,} nodes "
                    f"(at most {routing.MAX_STATIC_NODES:,}); use `routing: ospf`",
                )
                return topology
            if topo.routing_timers is not None:
                self.err((*_BASE, "routing_timers"), "`routing_timers` applies to `routing: ospf`, not to static routes", key=True)
            computed = routing.static_routes(topology, _targets(topology, probes))
            nodes = tuple(replace(node, routes=node.routes + computed[node.name]) for node in topology.nodes)
            return replace(topology, nodes=nodes)
        return self._ospf(topo, topology)

    def _ospf(self, topo: model.Topology, topology: Topology) -> Topology:
        timers = topo.routing_timers or model.RoutingTimers()
        hello_s = self._whole_seconds(timers.hello, "hello")
        dead_s = self._whole_seconds(timers.dead, "dead")
        if hello_s is not None and dead_s is not None and dead_s <= hello_s:
            self.err((*_BASE, "routing_timers", "dead"), f"the dead interval ({dead_s} s) must exceed the hello interval ({hello_s} s); 4 x hello is usual")
        cost = routing_ospf.costs(topology)
        nodes: list[Node] = []
        for node in topology.nodes:
            npath: KeyPath = (*_BASE, "nodes", node.name)
            if node.kind != "netns":
                self.err(
                    (*npath, "kind"),
                    f"`routing: ospf` runs FRR in namespace nodes, and node {node.name} is a container; run a routing "
                    "daemon in its image, or use `routing: static-shortest-path`",
                )
                continue
            given = topo.nodes[node.name].daemons
            if given is not None and given.frr is not None:
                self.err(
                    (*npath, "daemons", "frr"),
                    f"node {node.name} has its own `daemons: frr`, and `routing: ospf` generates FRR's configuration "
                    "in every node; remove one",
                    key=True,
                )
                continue
            if routing_ospf.router_id(node) is None:
                self.err(npath, f"node {node.name} has no IPv4 address for an OSPF router-id; give it a loopback", key=True)
                continue
            neighbours, routes = routing_ospf.expected(node, topology)
            frr = model.Frr(
                config=routing_ospf.config(node, topology, cost, hello_s, dead_s),
                daemons=["zebra", "ospfd"],
                ospf_neighbors=neighbours,
                ospf_routes=routes,
                ready_timeout=timers.converge_timeout,
            )
            services = daemons.services(self, node.name, model.Daemons(frr=frr), (*npath, "daemons"))
            taken = {service.name for service in node.services}
            for service in services:
                if service.name in taken:
                    self.err((*npath, "services"), f"node {node.name} has a service named '{service.name}', as a daemon of `routing: ospf`; rename the service", key=True)
            nodes.append(replace(node, services=(*node.services, *services)))
        return replace(topology, nodes=tuple(nodes)) if len(nodes) == len(topology.nodes) else topology

    def _whole_seconds(self, value: float | None, key: str) -> int | None:
        if value is None:
            return None
        if value != int(value) or not 1 <= value <= 65535:
            self.err((*_BASE, "routing_timers", key), f"OSPF's {key} interval is whole seconds from 1 to 65535, not {value:g} s")
            return None
        return int(value)


def _targets(topology: Topology, probes: list[tuple[int, Any]]) -> dict[str, set[IPAddress]]:
    """Addresses probes target that are not a node's primary address (an endpoint, an address
    of an interface), by the node holding them: routes to those are computed too."""
    holders = {address: node.name for node in topology.nodes for address in node.addresses}
    out: dict[str, set[IPAddress]] = {}
    for _, probe in probes:
        ref = getattr(probe, "to", None)
        if not isinstance(ref, str):
            continue
        address: IPAddress | None
        try:
            address = ip_address(ref)
        except ValueError:
            node_name, sep, iface_name = ref.partition(":")
            if not sep:
                continue  # a node: its primary address is routed already
            try:
                iface = topology.node(node_name).interface(iface_name)
            except KeyError:
                continue  # reported by the probes' checks
            address = iface.ipv4.ip if iface.ipv4 is not None else None
        owner = holders.get(address) if address is not None else None
        if address is not None and owner is not None:
            out.setdefault(owner, set()).add(address)
    return out
