"""Automatic routing (`routing:`): the static shortest-path routes checked by the forwarding
replay (drills.scenario.reachability) on a ring, a grid and a seeded random graph, their
backups after a cut, ties, IPv6, the errors, and the OSPF configuration generated. Pure: no
kernel (the real drills are in tests/test_routing_drills.py)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from drills.errors import ScenarioError
from drills.scenario import load_scenario, reachability, routing, routing_ospf
from drills.scenario.resolved import Link, Scenario, Topology


def _scenario(tmp_path: Path, links: list[tuple[str, str]], *, extra: str = "", nodes: str = "", profiles: dict[int, str] | None = None, probes: str = "") -> Scenario:
    """A scenario whose topology joins `links` (node pairs), interfaces named after the peer."""
    names = sorted({n for pair in links for n in pair})
    lines = ["version: 1", "name: routed", "topology:", "  routing: static-shortest-path", extra, "  nodes:"]
    lines += [nodes] if nodes else [f"    {name}: {{}}" for name in names]
    lines.append("  links:")
    used: dict[str, int] = {}
    for i, (a, b) in enumerate(links):
        ends = []
        for here, there in ((a, b), (b, a)):
            used[f"{here}{there}"] = used.get(f"{here}{there}", 0) + 1
            ends.append(f"{here}:{there.replace('-', '')}{used[f'{here}{there}']}"[:40])
        profile = f", profile: {profiles[i]}" if profiles and i in profiles else ""
        lines.append(f"    - {{endpoints: [{ends[0]}, {ends[1]}]{profile}}}")
    lines.append("duration: 5s")
    if probes:
        lines.append(probes)
    path = tmp_path / "routed.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return load_scenario(path)


def _ring(n: int) -> list[tuple[str, str]]:
    return [(f"n{i:02d}", f"n{(i + 1) % n:02d}") for i in range(n)]


def _grid(w: int, h: int) -> list[tuple[str, str]]:
    out = []
    for x in range(w):
        for y in range(h):
            if x + 1 < w:
                out.append((f"g{x}{y}", f"g{x + 1}{y}"))
            if y + 1 < h:
                out.append((f"g{x}{y}", f"g{x}{y + 1}"))
    return out


def _random_connected(n: int, extra: int, seed: int) -> list[tuple[str, str]]:
    """A random spanning tree plus `extra` chords (seeded: the same graph at every run)."""
    rng = random.Random(seed)
    names = [f"r{i:02d}" for i in range(n)]
    edges = {tuple(sorted((names[i], names[rng.randrange(i)]))) for i in range(1, n)}
    while len(edges) < n - 1 + extra:
        a, b = rng.sample(names, 2)
        edges.add(tuple(sorted((a, b))))
    return sorted((a, b) for a, b in edges)


def _all_pairs_reach(topology: Topology) -> None:
    for source in topology.nodes:
        for target in topology.nodes:
            if target is not source and target.loopback is not None:
                reachability.trace(topology, source.name, target.loopback.ip)


def _cut(topology: Topology, link: Link) -> Topology:
    """The topology as the kernel has it after carrier loss on `link`: the link gone, and both
    ends' routes through it dropped (ignore_routes_with_linkdown)."""
    ends = {(link.a.node, link.a.name), (link.b.node, link.b.name)}
    nodes = tuple(
        replace(node, routes=tuple(r for r in node.routes if (node.name, r.device) not in ends)) for node in topology.nodes
    )
    return Topology(nodes, tuple(other for other in topology.links if other is not link), topology.segments)


SHAPES = {
    "ring": _ring(7),
    "grid": _grid(4, 3),
    "random": _random_connected(16, 10, seed=1717),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_replay_reaches_every_pair(tmp_path: Path, shape: str) -> None:
    scenario = _scenario(tmp_path, SHAPES[shape])
    _all_pairs_reach(scenario.topology)
    assert reachability.applies_to(scenario.topology)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_backups_reach_once_the_primary_link_is_cut(tmp_path: Path, shape: str) -> None:
    """Wherever a node has a backup to a destination, cutting its primary link still reaches
    it (loop-free alternates: the neighbour's path never comes back)."""
    topology = _scenario(tmp_path, SHAPES[shape]).topology
    checked = 0
    for node in topology.nodes:
        by_destination: dict[IPv4Network, list[str | None]] = {}
        for route in node.routes:
            if isinstance(route.destination, IPv4Network):
                by_destination.setdefault(route.destination, []).append(route.device)
        for destination, devices in by_destination.items():
            if len(devices) < 2:
                continue
            cut = _cut(topology, topology.link(f"{node.name}:{devices[0]}"))
            path = reachability.trace(cut, node.name, destination.network_address)
            assert path.nodes[1] != topology.link(f"{node.name}:{devices[0]}").b.node or devices[0] != devices[1]
            checked += 1
    assert checked > 0


def test_every_single_cut_of_the_random_graph(tmp_path: Path) -> None:
    """Every single-link cut, every pair: a path that does not cross the cut is untouched; one
    that crosses it where the node before the cut has a backup still reaches. The pairs left
    without a path are those the cut separates (a bridge) and those the static routes cannot
    protect (the node before the cut has no loop-free alternate: every other neighbour's path comes
    back through it, and only a routing protocol's reconvergence helps); the counts are pinned
    (the graph is seeded). On this sparse graph (mean degree 3.25) about half the pairs crossing
    a cut that leaves them connected are protected."""
    topology = _scenario(tmp_path, SHAPES["random"]).topology
    graph = routing.Graph.of(topology)
    crossing = unprotected = separated = 0
    for link in topology.links:
        cut = _cut(topology, link)
        parts = routing.Graph.of(cut).components()
        ends = {link.a.node: link.a.name, link.b.node: link.b.name}
        for source in topology.nodes:
            for target in topology.nodes:
                if target is source or target.loopback is None:
                    continue
                path = reachability.trace(topology, source.name, target.loopback.ip).nodes
                hops = list(itertools.pairwise(path))
                crossed = next((a for a, b in hops if {a, b} == set(ends)), None)
                if crossed is None:
                    reachability.trace(cut, source.name, target.loopback.ip)
                    continue
                crossing += 1
                if len(parts) > 1 and not any(source.name in p and target.name in p for p in parts):
                    separated += 1
                    continue
                backups = [r for r in topology.node(crossed).routes if r.destination == target.loopback.network]
                if len(backups) > 1 and backups[1].device != ends[crossed]:
                    reachability.trace(cut, source.name, target.loopback.ip)
                else:
                    unprotected += 1
    assert len(graph.names) == 16
    assert (crossing, separated, unprotected) == PINNED_RANDOM


PINNED_RANDOM = (534, 60, 249)  # (pairs crossing a cut, separated by it, left unprotected)


def test_ties_go_to_the_lowest_next_hop_and_backups_have_distinct_metrics(tmp_path: Path) -> None:
    # a square: a-b-d and a-c-d cost the same (1 ms a link)
    topology = _scenario(tmp_path, [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]).topology
    d = topology.node("d").loopback
    assert d is not None
    to_d = [r for r in topology.node("a").routes if r.destination == d.network]
    assert [(r.device, r.metric) for r in to_d] == [("b1", 200), ("c1", 201)]
    assert to_d[0].source == topology.node("a").loopback.ip  # type: ignore[union-attr]


def test_costs_follow_the_profiles_delay_in_each_direction(tmp_path: Path) -> None:
    assert routing.link_cost(None) == 100  # 1 ms in 10 µs units
    assert routing.link_cost(0.0005) == 50  # fibre
    assert routing.link_cost(0.055) == 5500  # subsea-fibre
    assert routing.link_cost(0.0) == 1
    assert routing.link_cost(10.0) == routing.MAX_COST
    # a cheap two-hop detour beats the direct subsea link
    topology = _scenario(tmp_path, [("a", "b"), ("a", "c"), ("b", "c")], profiles={1: "subsea-fibre", 0: "fibre", 2: "fibre"}).topology
    c = topology.node("c").loopback
    assert c is not None
    to_c = [(r.device, r.metric) for r in topology.node("a").routes if r.destination == c.network]
    assert to_c == [("b1", 100), ("c1", 5500)]


def test_an_asymmetric_profile_weighs_each_direction(tmp_path: Path) -> None:
    profiles = "profiles:\n  uplink: {delay: 2ms, reverse: {delay: 20ms}}\n"
    path = tmp_path / "asym.yaml"
    path.write_text(
        "version: 1\nname: asym\n" + profiles + "topology:\n  routing: static-shortest-path\n  nodes: {a: {}, b: {}}\n"
        "  links:\n    - {endpoints: [a:e0, b:e0], profile: uplink}\nduration: 5s\n"
    )
    topology = load_scenario(path).topology
    assert [r.metric for r in topology.node("a").routes] == [200]
    assert [r.metric for r in topology.node("b").routes] == [2000]


def test_ipv6_routes_to_each_nodes_first_ipv6_address(tmp_path: Path) -> None:
    topology = _scenario(tmp_path, _ring(5), extra="  addressing: {ipv6: 'fd00:d811::/48'}").topology
    for source in topology.nodes:
        for target in topology.nodes:
            if target is not source:
                first6 = next(i.ipv6 for i in target.interfaces if i.ipv6 is not None)
                reachability.trace(topology, source.name, first6.ip)
    v6 = [r for r in topology.node("n00").routes if r.destination.version == 6]
    assert len({r.destination for r in v6}) == 4 and all(r.gateway is not None and r.gateway.version == 6 for r in v6)
    # the two nodes two hops away on a ring of 5 have a backup the other way round
    assert len(v6) == 6


def test_route_counts_are_bounded_by_destinations_times_link_ends(tmp_path: Path) -> None:
    links = _random_connected(40, 30, seed=4)
    topology = _scenario(tmp_path, links).topology
    for node in topology.nodes:
        assert len(node.routes) <= (len(topology.nodes) - 1) * len(node.interfaces)
        assert len({r.destination for r in node.routes}) == len(topology.nodes) - 1
        keys = [(r.destination, r.metric) for r in node.routes]
        assert len(keys) == len(set(keys))  # the kernel would replace a same-metric route


def test_written_routes_win_for_their_prefix(tmp_path: Path) -> None:
    nodes = "    a: {routes: [{to: c, via: b:a1, metric: 7}]}\n    b: {}\n    c: {}"
    topology = _scenario(tmp_path, [("a", "b"), ("b", "c"), ("a", "c")], nodes=nodes).topology
    c = topology.node("c").loopback
    assert c is not None
    assert [(r.device, r.metric) for r in topology.node("a").routes if r.destination == c.network] == [(None, 7)]


def test_a_probe_to_an_interface_address_gets_routes(tmp_path: Path) -> None:
    probes = "probes:\n  - {name: p, type: icmp, from: a, to: 'c:b1'}"
    scenario = _scenario(tmp_path, [("a", "b"), ("b", "c")], probes=probes)
    target = scenario.topology.node("c").interface("b1").ipv4
    assert target is not None
    assert any(r.destination == IPv4Network(target.ip) for r in scenario.topology.node("a").routes)
    assert reachability.problems(scenario) == []


def test_a_disconnected_topology_names_the_parts(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        _scenario(tmp_path, [("a", "b"), ("b", "c"), ("x", "y")])
    text = str(info.value)
    assert "falls into 2 parts: nodes {a, b, c} cannot reach {x, y}" in text
    assert "routed.yaml:4" in text  # the `routing:` line


def test_routing_timers_need_ospf(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="`routing_timers` applies to `routing: ospf`"):
        _scenario(tmp_path, [("a", "b")], extra="  routing_timers: {hello: 1s, dead: 4s}")


def _ospf(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ospf.yaml"
    path.write_text("version: 1\nname: ospf\ntopology:\n  routing: ospf\n" + body + "duration: 5s\n")
    return path


RING3 = "  nodes: {a: {}, b: {}, c: {}}\n  links:\n    - {endpoints: [a:b, b:a], profile: fibre}\n    - {endpoints: [b:c, c:b]}\n    - {endpoints: [c:a, a:c], profile: subsea-fibre}\n"


def test_ospf_generates_each_routers_configuration(tmp_path: Path) -> None:
    scenario = load_scenario(_ospf(tmp_path, "  routing_timers: {hello: 1s, dead: 4s}\n" + RING3))
    a = scenario.topology.node("a")
    assert [s.name for s in a.services] == ["zebra", "ospfd"]
    private = a.services[0].private
    assert private is not None
    conf = dict(private.files)["frr.conf"]
    lo = a.loopback
    assert lo is not None
    for line in (
        "interface b\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n ip ospf cost 50\nexit",
        " ip ospf cost 5500\n",
        f" ospf router-id {lo.ip}\n network {lo.network} area 0\n",
    ):
        assert line in conf
    assert "0.0.0.0/0" not in conf  # 127.0.0.0/8 of lo would be announced too
    # two adjacencies; routes to 2 loopbacks and the one link not attached to a
    assert routing_ospf.expected(a, scenario.topology) == (2, 3)
    settled = a.services[1].settled
    assert settled is not None and "-ge 2" in (settled.command or "") and "-ge 3" in (settled.command or "")
    assert not reachability.applies_to(scenario.topology)  # a daemon routes: no static replay


def test_ospf_costs_agree_with_the_static_weights(tmp_path: Path) -> None:
    scenario = load_scenario(_ospf(tmp_path, RING3))
    cost = routing_ospf.costs(scenario.topology)
    assert cost[("a", "b")] == routing.link_cost(0.0005) and cost[("c", "b")] == routing.link_cost(None)
    conf = dict(scenario.topology.node("a").services[0].private.files)["frr.conf"]  # type: ignore[union-attr]
    assert "hello-interval" not in conf  # FRR's defaults without routing_timers


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  nodes: {a: {kind: container, image: x}, b: {}}\n  links:\n    - {endpoints: [a:e0, b:e0]}\n", "node a is a container"),
        (
            "  nodes: {a: {daemons: {frr: {config: \"x\\ny\"}}}, b: {}}\n  links:\n    - {endpoints: [a:e0, b:e0]}\n",
            "node a has its own `daemons: frr`",
        ),
        ("  routing_timers: {hello: 1.5s}\n" + RING3, "whole seconds from 1 to 65535, not 1.5 s"),
        ("  routing_timers: {hello: 4s, dead: 4s}\n" + RING3, "the dead interval (4 s) must exceed the hello interval (4 s)"),
        ("  nodes: {a: {}, b: {}, c: {}}\n  links:\n    - {endpoints: [a:e0, b:e0]}\n", "cannot reach {c}"),
    ],
)
def test_ospf_refusals(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_ospf(tmp_path, body))
    assert message in str(info.value)


def test_static_routing_is_bounded_in_nodes(tmp_path: Path) -> None:
    chain = [(f"c{i:04d}", f"c{i + 1:04d}") for i in range(routing.MAX_STATIC_NODES)]
    with pytest.raises(ScenarioError, match="this topology has 3,001 nodes \\(at most 3,000\\); use `routing: ospf`"):
        _scenario(tmp_path, chain)


@pytest.mark.parametrize("imported", ["aarnet", "widejpn", "sinet"])
def test_static_routes_on_an_imported_backbone_reach_every_pair(tmp_path: Path, imported: str) -> None:
    """An imported Topology Zoo backbone (`drill import zoo`, testbed/topologies/) with
    `routing: static-shortest-path`: the forwarding replay reaches every node's loopback from
    every node (delays from geography are the weights)."""
    source = Path(__file__).resolve().parent.parent / "testbed" / "topologies" / f"{imported}.yaml"
    (tmp_path / "topology.yaml").write_text("routing: static-shortest-path\n" + source.read_text())
    (tmp_path / "routed.yaml").write_text("version: 1\nname: routed\ntopology: topology.yaml\nduration: 5s\n")
    scenario = load_scenario(tmp_path / "routed.yaml")
    assert len(scenario.topology.nodes) > 15
    # The links' own delays (from geography) are the weights, not the 1 ms default.
    assert any(routing.directed_costs(link)[0] != routing.link_cost(None) for link in scenario.topology.links)
    _all_pairs_reach(scenario.topology)
