"""Static reachability: does every probe have a path through the resolved routes?

A routing mistake (a missing return route, a next hop on the wrong link) otherwise shows up only
after the testbed is deployed, as a baseline with no traffic: the drill ends inconclusive. When
the only routing in a testbed is its static routes (no services, so no routing daemon, and only
namespace nodes), the kernel's forwarding decision can be replayed exactly here, hop by hop, so
`drill validate` can say which node lacks which route before anything is built.

The replay follows the kernel's rules for what the testbed uses: longest prefix wins, then the
lowest metric; connected subnets have metric 0; the source of a locally sent packet is the
route's preferred source, else the outgoing interface's address.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.errors import Problem
from drills.scenario.resolved import Interface, IPAddress, IPNetwork, Node, Scenario, Topology

MAX_HOPS = 64  # the kernel would give up at the TTL; a static loop is reported long before


@dataclass(frozen=True)
class _Entry:
    network: IPNetwork
    gateway: IPAddress | None
    device: str
    metric: int
    source: IPAddress | None


@dataclass(frozen=True)
class Path:
    """A replayed forward path: the nodes crossed, and the source address the first hop chose."""

    nodes: tuple[str, ...]
    source: IPAddress | None


class NoPath(Exception):
    """The replay stopped: `reason` says where and why, in the user's terms."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def applies_to(topology: Topology) -> bool:
    """True when static routes are the only routing: then a missing path is certain."""
    return all(node.kind == "netns" and not node.services for node in topology.nodes)


def _table(node: Node) -> list[_Entry]:
    entries: list[_Entry] = []
    for iface in node.interfaces:
        for address in (iface.ipv4, iface.ipv6):
            if address is not None:
                entries.append(_Entry(address.network, None, iface.name, 0, address.ip))
    for route in node.routes:
        device = route.device or _device_towards(node, route.gateway)
        if device is not None:
            entries.append(_Entry(route.destination, route.gateway, device, route.metric, route.source))
    return entries


def _device_towards(node: Node, gateway: IPAddress | None) -> str | None:
    if gateway is None:
        return None
    for iface in node.interfaces:
        for address in (iface.ipv4, iface.ipv6):
            if address is not None and gateway in address.network:
                return iface.name
    return None


def _lookup(table: list[_Entry], destination: IPAddress) -> _Entry | None:
    candidates = [e for e in table if e.network.version == destination.version and destination in e.network]
    if not candidates:
        return None
    return min(candidates, key=lambda e: (-e.network.prefixlen, e.metric))


def _interface_address(node: Node, device: str, version: int) -> IPAddress | None:
    iface = node.interface(device)
    address = iface.ipv4 if version == 4 else iface.ipv6
    return address.ip if address is not None else None


class _Forwarding:
    """What a replay looks up, indexed once per topology: each interface's peer and each node's
    table (built when first needed). Rebuilding them for every probe, and every node's table at
    every hop, made a testbed with n links and n/10 probes cost n²."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        # Every interface an interface reaches in one hop: a link's other end, or every other
        # member of its LAN segment (a segment connects each member to each other).
        self.peers: dict[tuple[str, str], tuple[Interface, ...]] = {}
        for link in topology.links:
            self.peers[(link.a.node, link.a.name)] = (link.b,)
            self.peers[(link.b.node, link.b.name)] = (link.a,)
        for segment in topology.segments:
            for member in segment.members:
                self.peers[(member.node, member.name)] = tuple(m for m in segment.members if m != member)
        self._tables: dict[str, list[_Entry]] = {}

    def table(self, node: Node) -> list[_Entry]:
        if node.name not in self._tables:
            self._tables[node.name] = _table(node)
        return self._tables[node.name]


def trace(topology: Topology, source: str, destination: IPAddress) -> Path:
    """Replay forwarding of a packet sent by node `source` to `destination`."""
    return _trace(_Forwarding(topology), source, destination)


def _trace(forwarding: _Forwarding, source: str, destination: IPAddress) -> Path:
    topology, peers = forwarding.topology, forwarding.peers
    node = topology.node(source)
    crossed = [source]
    chosen_source: IPAddress | None = None
    for _hop in range(MAX_HOPS):
        if destination in node.addresses:
            return Path(tuple(crossed), chosen_source)
        entry = _lookup(forwarding.table(node), destination)
        if entry is None:
            raise NoPath(f"node {node.name} has no route to {destination}")
        if chosen_source is None:
            chosen_source = entry.source or _interface_address(node, entry.device, destination.version)
        next_hop = entry.gateway or destination
        reached = peers.get((node.name, entry.device))
        if reached is None:
            raise NoPath(f"node {node.name} sends {destination} out of {entry.device}, which is on no link")
        holding = [p for p in reached if next_hop in {a.ip for a in (p.ipv4, p.ipv6) if a is not None}]
        peer = holding[0] if holding else reached[0]
        if not holding:
            if entry.gateway is not None:
                held_by = f"is not {peer.endpoint}'s address" if len(reached) == 1 else "is held by no member of its segment"
                raise NoPath(f"node {node.name}'s next hop {next_hop} for {destination} {held_by}")
            # A connected subnet reaching a destination the peer does not hold: the peer would
            # not answer ARP for it.
            holder = f"{peer.endpoint} does not hold it" if len(reached) == 1 else "no member of its segment holds it"
            raise NoPath(f"node {node.name} expects {destination} on {entry.device}, but {holder}")
        if peer.node in crossed:
            raise NoPath(f"routing loop for {destination}: {' → '.join([*crossed, peer.node])}")
        crossed.append(peer.node)
        node = topology.node(peer.node)
    raise NoPath(f"more than {MAX_HOPS} hops to {destination}")


def problems(scenario: Scenario) -> list[Problem]:
    """One problem per probe whose request or reply has no path through the static routes."""
    topology = scenario.topology
    if not applies_to(topology):
        return []
    found = []
    forwarding = _Forwarding(topology)
    for i, probe in enumerate(scenario.source.probes):
        ref = getattr(probe, "to", None)
        if ref is None:  # a command probe runs in its node
            continue
        address, owner = topology.probe_target(ref)
        if address is None or owner is None:  # an address no node holds: nothing to replay
            continue
        one_way = getattr(probe, "echo", True) is False
        # Probes bind their socket to the source node's primary address (its loopback), so
        # that is where replies must find their way back to.
        bound = topology.node(probe.source).primary_address
        try:
            forward = _trace(forwarding, probe.source, address)
            reply_to = bound if bound is not None else forward.source
            if not one_way and reply_to is not None:
                _trace(forwarding, owner, reply_to)
        except NoPath as exc:
            found.append(
                scenario.problem(
                    ("probes", i, "to"),
                    f"probe {probe.name} ({probe.source} → {ref}) cannot work on these static routes: "
                    f"{exc.reason}. Add the missing route under that node's `routes:`, "
                    "or run a routing daemon as a service",
                )
            )
    return found
