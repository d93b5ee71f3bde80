"""Automatic static routing (`routing: static-shortest-path`): pure, computed at resolve time.

Every node gets, for every other node's address (its loopback, or its first interface's address
when it has none; IPv6: its first interface's IPv6 address; plus any address a probe targets),
one route per link end at most, ordered by metric:

- **Weights**: a link's cost in each direction is its one-way delay from its profile (`delay`;
  b→a: `reverse.delay` when given) in units of `COST_UNIT_S` (10 µs), at least 1, at most
  65,535 (OSPF's 16-bit interface cost: `routing: ospf` uses the same figures, so both modes
  choose the same paths). A link without a profile delay, and every LAN segment, costs
  `DEFAULT_DELAY_S` (1 ms). Jitter, handovers and `degrade` steps do not count: routes are fixed
  before the drill (as static routes are); a userspace link counts as its profile says.
- **Primary**: the shortest path by total cost; a tie goes to the lowest next hop (neighbour
  name, then its own interface name).
- **Backups**: through every other link end whose neighbour is a loop-free alternate for the
  destination (RFC 5286's inequality 1, dist(n, d) < dist(n, s) + dist(s, d): none of the
  neighbour's shortest paths comes back through this node), metric = the path's cost through
  that neighbour. When carrier is lost on the primary, the kernel drops its route
  (ignore_routes_with_linkdown: at once) and the next metric forwards, as a router's FIB does.
  A neighbour that is no loop-free alternate gets no route: it would send the packet back.
- Metrics are path costs, raised by one where needed so that the routes to one destination have
  distinct metrics (the kernel replaces a route of the same destination and metric).

Work: one Dijkstra per node (O(N · E log N)), then for each node and destination a scan of the
node's link ends (O(N · E)); memory N² distances (8 bytes each) while computing.
"""

from __future__ import annotations

import gc
import heapq
from array import array
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from drills.scenario.resolved import Interface, IPAddress, IPNetwork, Link, Route, Topology

COST_UNIT_S = 10e-6  # one unit of link cost: 10 µs of one-way delay
DEFAULT_DELAY_S = 0.001  # the delay of a link without one (and of a LAN segment)
MAX_COST = 65_535  # OSPF's interface cost is 16 bits; both modes use the same figures
_INFINITY = 2**62
# N² routes: 18 million at 3,000 nodes (about 2 GB and minutes to compute; bench/routing.py).
# Past that the testbed could not be deployed in reasonable time either.
MAX_STATIC_NODES = 3000


def link_cost(delay_s: float | None) -> int:
    """A direction's cost from its one-way delay (None: `DEFAULT_DELAY_S`)."""
    delay = DEFAULT_DELAY_S if delay_s is None else delay_s
    return max(1, min(MAX_COST, round(delay / COST_UNIT_S)))


def directed_costs(link: Link) -> tuple[int, int]:
    """The link's cost a→b and b→a, from its profile's delays."""
    spec = link.profile_spec
    forward = spec.delay if spec is not None else None
    reverse = spec.reverse.delay if spec is not None and spec.reverse is not None else None
    return link_cost(forward), link_cost(reverse if reverse is not None else forward)


@dataclass(frozen=True, slots=True)
class End:
    """One link end of a node as an edge: towards `neighbour` (an index), out of `device`."""

    neighbour: int
    cost: int
    device: str
    gateway4: IPv4Address | None
    gateway6: IPv6Address | None


@dataclass(frozen=True)
class Graph:
    """The testbed as a directed graph; each node's ends sorted by (neighbour name, device), the
    tie-break order."""

    names: tuple[str, ...]
    ends: tuple[tuple[End, ...], ...]

    @classmethod
    def of(cls, topology: Topology) -> Graph:
        names = tuple(node.name for node in topology.nodes)
        index = {name: i for i, name in enumerate(names)}
        ends: list[list[End]] = [[] for _ in names]

        def add(here: Interface, there: Interface, cost: int) -> None:
            gateway4 = there.ipv4.ip if there.ipv4 is not None and here.ipv4 is not None else None
            gateway6 = there.ipv6.ip if there.ipv6 is not None and here.ipv6 is not None else None
            ends[index[here.node]].append(End(index[there.node], cost, here.name, gateway4, gateway6))

        for link in topology.links:
            forward, backward = directed_costs(link)
            add(link.a, link.b, forward)
            add(link.b, link.a, backward)
        segment_cost = link_cost(None)
        for segment in topology.segments:
            for member in segment.members:
                for other in segment.members:
                    if other is not member and other.node != member.node:
                        add(member, other, segment_cost)
        return cls(names, tuple(tuple(sorted(e, key=lambda end: (names[end.neighbour], end.device))) for e in ends))

    def components(self) -> list[list[str]]:
        """The connected parts, largest first (one part: every node reaches every other)."""
        undirected: list[set[int]] = [set() for _ in self.names]
        for i, ends in enumerate(self.ends):
            for end in ends:
                undirected[i].add(end.neighbour)
                undirected[end.neighbour].add(i)
        seen = [False] * len(self.names)
        parts = []
        for start in range(len(self.names)):
            if seen[start]:
                continue
            seen[start] = True
            part, stack = [start], [start]
            while stack:
                for nxt in undirected[stack.pop()]:
                    if not seen[nxt]:
                        seen[nxt] = True
                        part.append(nxt)
                        stack.append(nxt)
            parts.append(sorted(self.names[i] for i in part))
        return sorted(parts, key=lambda p: (-len(p), p))


def disconnected_message(parts: list[list[str]]) -> str:
    """Which nodes cannot reach which, in a few names per part."""

    def listed(names: list[str]) -> str:
        shown = ", ".join(names[:5])
        return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    others = "; ".join(f"{{{listed(p)}}}" for p in parts[1:4]) + (f"; and {len(parts) - 4} more parts" if len(parts) > 4 else "")
    return (
        f"automatic routing needs a connected topology, but it falls into {len(parts)} parts: nodes "
        f"{{{listed(parts[0])}}} cannot reach {others} (nor the reverse); add a link between the parts, or drop `routing:`"
    )


def distances_to(graph: Graph) -> list[array[int]]:
    """`result[d][x]`: the cost of the shortest path from node x to node d (Dijkstra from each
    destination over the reversed edges)."""
    n = len(graph.names)
    reverse: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for x, ends in enumerate(graph.ends):
        for end in ends:
            reverse[end.neighbour].append((x, end.cost))
    out = []
    for d in range(n):
        dist = [_INFINITY] * n
        dist[d] = 0
        heap = [(0, d)]
        while heap:
            here, x = heapq.heappop(heap)
            if here > dist[x]:
                continue
            for y, cost in reverse[x]:
                there = here + cost
                if there < dist[y]:
                    dist[y] = there
                    heapq.heappush(heap, (there, y))
        out.append(array("q", dist))
    return out


def next_hops(graph: Graph, to: list[array[int]], u: int) -> list[list[tuple[int, int]]]:
    """For node `u`, per destination index: (metric, position in u's ends) of each route, the
    primary first; empty for u itself."""
    ends = [(end.neighbour, end.cost) for end in graph.ends[u]]
    to_u = to[u]
    table: list[list[tuple[int, int]]] = []
    for d, to_d in enumerate(to):
        if d == u:
            table.append([])
            continue
        du = to_d[u]
        if len(ends) == 1:  # a leaf: its one link (always loop-free)
            table.append([(du, 0)])
            continue
        found = []
        for position, (v, cost) in enumerate(ends):
            dv = to_d[v]
            # Loop-free alternate (RFC 5286 inequality 1); the primary always passes it.
            if dv < to_u[v] + du:
                found.append((cost + dv, position))
        found.sort()
        last = -1
        routes = []
        for metric, position in found:
            last = metric if metric > last else last + 1
            routes.append((last, position))
        table.append(routes)
    return table


def destinations(topology: Topology, targets: dict[str, set[IPAddress]]) -> list[list[IPNetwork]]:
    """Per node (in order), the host prefixes other nodes route to: its primary IPv4 address,
    its first IPv6 address, and the addresses probes target in it (`targets` by node name)."""
    out: list[list[IPNetwork]] = []
    for node in topology.nodes:
        nets: list[IPNetwork] = []
        primary = node.primary_address
        if primary is not None:
            nets.append(IPv4Network(primary))
        first6 = next((i.ipv6.ip for i in node.interfaces if i.ipv6 is not None), None)
        if first6 is not None:
            nets.append(IPv6Network(first6))
        for address in sorted(targets.get(node.name, ()), key=lambda a: (a.version, int(a))):
            net = ip_network(address)
            if net not in nets:
                nets.append(net)
        out.append(nets)
    return out


def static_routes(topology: Topology, targets: dict[str, set[IPAddress]] | None = None) -> dict[str, tuple[Route, ...]]:
    """Every node's computed routes (the caller checked the topology is connected). A node's
    routes to a prefix it already has a written route to are left out: written routes win."""
    # Millions of acyclic records: the cyclic collector's passes over them are a third of the
    # time at 1,000 nodes and find nothing; it runs again (if it ran) once they are built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _static_routes(topology, targets or {})
    finally:
        if collecting:
            gc.enable()


def _static_routes(topology: Topology, targets: dict[str, set[IPAddress]]) -> dict[str, tuple[Route, ...]]:
    graph = Graph.of(topology)
    to = distances_to(graph)
    dests = [[(net, net.version == 6) for net in nets] for nets in destinations(topology, targets)]
    out: dict[str, tuple[Route, ...]] = {}
    for u, node in enumerate(topology.nodes):
        written = {route.destination for route in node.routes}
        source4 = node.primary_address
        source6 = next((i.ipv6.ip for i in node.interfaces if i.ipv6 is not None), None)
        ends = graph.ends[u]
        routes: list[Route] = []
        for d, hops in enumerate(next_hops(graph, to, u)):
            for net, v6 in dests[d]:
                if written and net in written:  # hashing a network is slow: only when needed
                    continue
                source = source6 if v6 else source4
                for metric, position in hops:
                    end = ends[position]
                    gateway = end.gateway6 if v6 else end.gateway4
                    if gateway is not None:
                        routes.append(Route(net, gateway, end.device, metric, source))
        out[node.name] = tuple(routes)
    return out
