"""`drill import zoo`: Internet Topology Zoo graphs (GraphML, GML) as topology files.

Unit tests (pure: files in tmp_path, no kernel): the three vendored Zoo graphs (testbed/zoo,
CC BY 4.0) with pinned counts and delays checked against a hand calculation, hostile and
malformed files refused with their line, names, GML, the CLI's words. Then one test that deploys
an imported backbone in a private state directory and tears it down (root, namespaces).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from drills.backend import NETEM
from drills.backends import layout
from drills.engine.plan import RUN_PLACEHOLDER, build_plan
from drills.errors import BadInput
from drills.scenario import load_scenario
from drills.zoo import geo
from drills.zoo.graph import MAX_FILE_BYTES, GraphError, RawEdge, RawGraph, RawNode
from drills.zoo.importer import ZooOptions, convert, import_zoo, zoo_request

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "testbed" / "zoo"
TOPOLOGIES = REPO / "testbed" / "topologies"


def _import(tmp_path: Path, source: Path, options: ZooOptions | None = None) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "topology.yaml"
    report = import_zoo(source, out, options)
    return report, yaml.safe_load(out.read_text())


def _links(topology: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {link["name"]: link for link in topology["links"]}


# --------------------------------------------------------------------------- the three shared graphs


@pytest.mark.parametrize(
    ("graph", "nodes", "links", "unlocated", "defaulted", "colocated", "default_ms"),
    [
        # README of testbed/zoo: AARNet 19/24, WIDE 30/33, SINET 74/76; every AARNet node located.
        ("Aarnet", 19, 24, 0, 0, 6, 4.49),
        ("WideJpn", 30, 33, 11, 11, 1, 2.50),
        ("Sinet", 74, 76, 27, 27, 11, 0.77),
    ],
)
def test_shared_graphs_import_with_pinned_counts(
    tmp_path: Path, graph: str, nodes: int, links: int, unlocated: int, defaulted: int, colocated: int, default_ms: float
) -> None:
    report, topology = _import(tmp_path, ZOO / f"{graph}.graphml")
    assert (report.nodes, report.links) == (nodes, links)
    assert (len(topology["nodes"]), len(topology["links"])) == (nodes, links)
    assert len(report.unlocated) == unlocated and report.defaulted_links == defaulted
    assert report.colocated_links == colocated  # same coordinates at both ends: no `delay` written
    assert report.default_delay_ms == default_ms  # the median of the located links' delays
    assert report.parallel_links == 0 and report.self_loops == []  # none in these three
    # Every interface is used once: each edge got the next ethN on both of its nodes.
    endpoints = [e for link in topology["links"] for e in link["endpoints"]]
    assert len(endpoints) == len(set(endpoints)) == 2 * links


def test_delays_match_a_hand_calculation(tmp_path: Path) -> None:
    """Haversine on R = 6371 km, × 1.5, ÷ 199,861.6 km/s, rounded to 0.01 ms, worked by hand:

    Sydney2 (-33.86785, 151.20732) to Melbourne2 (-37.814, 144.96332), AARNet:
      Δφ = -3.94615° = -0.068873 rad, Δλ = -6.24400° = -0.108978 rad
      a = sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2) = 0.00118557 + 0.830454 × 0.789917 × 0.00296805
        = 0.00313108; c = 2 asin(√a) = 0.1119706 rad; d = 6371 × c = 713.36 km
      × 1.5 = 1070.05 km; ÷ 199,861.6 km/s = 5.3539 ms -> 5.35 ms
    KDDI Otemachi (35.68333, 139.76667) to Los Angeles (34.05223, -118.24368), WIDE, across the
    antimeridian: Δλ = -257.99035° (the same chord as +102.00965°), a = 0.40658981,
      c = 1.3828718 rad, d = 8810.28 km; × 1.5 = 13215.41 km; ÷ 199,861.6 = 66.1228 ms -> 66.12 ms
    Kanazawa DC (36.59444, 136.62556) to Sapporo DC (43.06417, 141.34694), SINET:
      Δφ = 0.112918 rad, Δλ = 0.082404 rad, a = 0.00417943, c = 0.1293873 rad, d = 824.33 km;
      × 1.5 = 1236.49 km; ÷ 199,861.6 = 6.1867 ms -> 6.19 ms
    """
    assert abs(geo.FIBRE_KM_PER_S - 199_861.6) < 0.05
    assert geo.great_circle_km(-33.86785, 151.20732, -37.814, 144.96332) == pytest.approx(713.36, abs=0.01)
    _, aarnet = _import(tmp_path, ZOO / "Aarnet.graphml")
    assert _links(aarnet)["Sydney2-Melbourne2"]["delay"] == "5.35ms"
    assert _links(aarnet)["Sydney1-Sydney2"].get("delay") is None  # co-located
    _, wide = _import(tmp_path, ZOO / "WideJpn.graphml")
    assert _links(wide)["KDDI-Otemachi-Los-Angeles"]["delay"] == "66.12ms"
    # LAIIX has no coordinates: its link gets the median of WIDE's located links, 2.50 ms.
    assert _links(wide)["LAIIX-Los-Angeles"]["delay"] == "2.50ms"
    _, sinet = _import(tmp_path, ZOO / "Sinet.graphml")
    assert _links(sinet)["Kanazawa-DC-Sapporo-DC"]["delay"] == "6.19ms"
    # The route factor scales the delay: 713.36 km × 2 ÷ 199,861.6 km/s = 7.1385 ms -> 7.14 ms.
    _, doubled = _import(tmp_path, ZOO / "Aarnet.graphml", ZooOptions(route_factor=2.0))
    assert _links(doubled)["Sydney2-Melbourne2"]["delay"] == "7.14ms"


def test_internal_only_leaves_out_external_nodes_and_their_edges(tmp_path: Path) -> None:
    # WIDE: 11 nodes marked Internal 0 (exchanges and peers: PAIX, NSPIXP-3, ...), all of them
    # without coordinates, each on one edge to the backbone: 19 nodes and 22 links remain.
    report, topology = _import(tmp_path, ZOO / "WideJpn.graphml", ZooOptions(internal_only=True))
    assert (report.nodes, report.links, report.external_left_out) == (19, 22, 11)
    assert report.unlocated == [] and report.defaulted_links == 0 and "PAIX" not in topology["nodes"]


def test_capacity_from_link_speed_and_labels(tmp_path: Path) -> None:
    _, wide = _import(tmp_path, ZOO / "WideJpn.graphml")
    assert _links(wide)["KDDI-Otemachi-Los-Angeles"]["rate"] == "1gbit"  # LinkSpeedRaw 1e9
    _, aarnet = _import(tmp_path, ZOO / "Aarnet.graphml")
    assert _links(aarnet)["Adelaide1-Darwin"]["rate"] == "155mbit"  # LinkLabel "< 155 Mbps": its bound
    assert "rate" not in _links(aarnet)["Perth1-Perth2"]  # no label
    assert geo.label_capacity("OC-192") == geo.Capacity(192 * 51_840_000, "LinkLabel")
    assert geo.label_capacity("STM-16") == geo.Capacity(16 * 155_520_000, "LinkLabel")
    assert geo.label_capacity("1-20Gbps") == geo.Capacity(20 * 10**9, "LinkLabel", bound=True)
    assert geo.label_capacity("T3") == geo.Capacity(44_736_000, "LinkLabel")
    assert geo.label_capacity("fibre") is None
    _, unrated = _import(tmp_path, ZOO / "Aarnet.graphml", ZooOptions(capacity=False))
    assert not any("rate" in link for link in unrated["links"])


def test_committed_topologies_are_what_the_importer_writes(tmp_path: Path) -> None:
    for graph, name in (("Aarnet", "aarnet"), ("WideJpn", "widejpn"), ("Sinet", "sinet")):
        out = tmp_path / f"{name}.yaml"
        import_zoo(ZOO / f"{graph}.graphml", out)
        assert out.read_text() == (TOPOLOGIES / f"{name}.yaml").read_text(), name


def test_the_written_file_is_a_topology_and_the_plan_shows_its_delays(tmp_path: Path) -> None:
    report, _ = _import(tmp_path, ZOO / "WideJpn.graphml")
    text = (tmp_path / "topology.yaml").read_text()
    assert text.startswith("# Imported from WideJpn.graphml by `drill import zoo`: WIDE, 30 nodes, 33 links.\n")
    assert "CC BY 4.0" in text and "route factor 1.5" in text and "11 nodes without coordinates" in text
    scenario_path = tmp_path / "s.yaml"
    scenario_path.write_text("version: 1\nname: wide\ntopology: topology.yaml\n")
    scenario = load_scenario(scenario_path)
    link = next(link for link in scenario.topology.links if link.name == "KDDI-Otemachi-Los-Angeles")
    assert link.profile is None and link.profile_spec is not None
    assert link.profile_spec.delay == pytest.approx(0.06612) and link.profile_spec.rate == 10**9
    plan = build_plan(scenario, layout(scenario.topology, RUN_PLACEHOLDER, lambda: {NETEM: True}))
    shown = {p.name: p.delay for p in plan.links}
    assert shown["KDDI-Otemachi-Los-Angeles"] == "66.12 ms"
    assert shown["LAIIX-Los-Angeles"] == "2.50 ms"
    assert report.delays_ms["KDDI-Otemachi-Los-Angeles"] == 66.12


def test_a_link_delay_replaces_its_profiles_both_ways(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "version: 1\nname: s\nprofiles:\n  vsat: {delay: 300ms, rate: 50mbit, reverse: {delay: 310ms, rate: 5mbit}}\n"
        "topology:\n  nodes: {a: {label: 'Site A'}, b: {}}\n"
        "  links:\n  - {endpoints: [a:eth1, b:eth1], profile: vsat, delay: 12ms}\n"
    )
    link = load_scenario(tmp_path / "s.yaml").topology.links[0]
    assert link.profile == "vsat" and link.profile_spec is not None
    assert (link.profile_spec.delay, link.profile_spec.rate) == (0.012, 50_000_000)
    assert link.profile_spec.reverse is not None
    assert (link.profile_spec.reverse.delay, link.profile_spec.reverse.rate) == (0.012, 5_000_000)


# --------------------------------------------------------------------------- names, GML, coordinates


def _graphml(nodes: str, edges: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
        '  <key attr.name="label" attr.type="string" for="node" id="d0" />\n'
        '  <key attr.name="Latitude" attr.type="double" for="node" id="d1" />\n'
        '  <key attr.name="Longitude" attr.type="double" for="node" id="d2" />\n'
        '  <key attr.name="LinkLabel" attr.type="string" for="edge" id="d3" />\n'
        '  <graph edgedefault="undirected">\n' + nodes + edges + "  </graph>\n</graphml>\n"
    )


def _node(node_id: str, label: str, where: tuple[float, float] | None = None) -> str:
    place = f'<data key="d1">{where[0]}</data><data key="d2">{where[1]}</data>' if where else ""
    return f'    <node id="{node_id}"><data key="d0">{label}</data>{place}</node>\n'


def test_names_are_made_valid_and_unique_and_labels_kept(tmp_path: Path) -> None:
    source = tmp_path / "g.graphml"
    source.write_text(
        _graphml(
            _node("0", "São Paulo", (-23.55, -46.63))
            + _node("1", "Sao Paulo", (-23.55, -46.63))
            + _node("2", "-- Cape Town / ZA --", (-33.92, 18.42))
            + _node("3", "")
            + _node("4", "A very long site name that goes on and on", (0.0, 0.0)),
            '    <edge source="0" target="1" />\n    <edge source="0" target="1" />\n'
            '    <edge source="2" target="2" />\n    <edge source="1" target="2" />\n'
            '    <edge source="3" target="4" />\n',
        ),
        encoding="utf-8",
    )
    report, topology = _import(tmp_path, source)
    names = list(topology["nodes"])
    assert names == ["Sao-Paulo", "Sao-Paulo-2", "Cape-Town-ZA", "n3", "A-very-long-site-name-th"]
    assert topology["nodes"]["Sao-Paulo"] == {"label": "São Paulo"}
    assert topology["nodes"]["n3"] == {}
    links = _links(topology)
    # The parallel edge is a second link; the self-loop (line 15) is dropped.
    assert list(links)[:2] == ["Sao-Paulo-Sao-Paulo-2", "Sao-Paulo-Sao-Paulo-2-2"]
    assert links["Sao-Paulo-Sao-Paulo-2-2"]["endpoints"] == ["Sao-Paulo:eth2", "Sao-Paulo-2:eth2"]
    assert report.parallel_links == 1 and report.self_loops == [15]
    assert all(len(name) <= 40 for name in links)
    # Written names load: the file is a valid topology.
    (tmp_path / "s.yaml").write_text("version: 1\nname: s\ntopology: topology.yaml\n")
    assert len(load_scenario(tmp_path / "s.yaml").topology.nodes) == 5


def test_nodes_without_coordinates_are_reported_and_get_the_default_delay(tmp_path: Path) -> None:
    source = tmp_path / "g.graphml"
    source.write_text(
        _graphml(
            _node("0", "Sydney", (-33.86785, 151.20732)) + _node("1", "Melbourne", (-37.814, 144.96332)) + _node("2", "Somewhere"),
            '    <edge source="0" target="1" />\n    <edge source="1" target="2" />\n',
        )
    )
    report, topology = _import(tmp_path, source, ZooOptions(default_delay_ms=3.0))
    assert report.unlocated == ["Somewhere"] and report.defaulted_links == 1
    assert _links(topology)["Melbourne-Somewhere"]["delay"] == "3.00ms"
    assert any("1 nodes without coordinates (Somewhere)" in line for line in report.summary())
    report, topology = _import(tmp_path, source)  # no --default-delay: the median, here Sydney-Melbourne's
    assert _links(topology)["Melbourne-Somewhere"]["delay"] == "5.35ms" and "median" in report.default_delay_why


def test_a_gml_graph_imports_like_its_graphml(tmp_path: Path) -> None:
    source = tmp_path / "tiny.gml"
    source.write_text(
        'Creator "Topology Zoo Toolset"\n'
        "graph [\n"
        '  Network "Tiny"\n'
        "  # a comment\n"
        '  node [ id 0 label "Sydney" Latitude -33.86785 Longitude 151.20732 graphics [ x 1.0 y 2.0 ] ]\n'
        "  node [\n    id 1\n    label \"Melbourne\"\n    Latitude -37.814\n    Longitude 144.96332\n  ]\n"
        '  edge [ source 0 target 1 LinkLabel "< 10 Gbps" ]\n'
        "]\n"
    )
    report, topology = _import(tmp_path, source)
    assert report.network == "Tiny" and list(topology["nodes"]) == ["Sydney", "Melbourne"]
    assert topology["links"] == [
        {"name": "Sydney-Melbourne", "endpoints": ["Sydney:eth1", "Melbourne:eth1"], "delay": "5.35ms", "rate": "10gbit"}
    ]
    bad = tmp_path / "bad.gml"
    bad.write_text('graph [\n  node [ id 0 ]\n  edge [ source 0 target 9 ]\n]\n')
    with pytest.raises(GraphError, match=r"bad\.gml:3: edge from '0' to '9': no node '9'"):
        import_zoo(bad, tmp_path / "out.yaml")
    bad.write_text('graph [\n  node [ id 0 label "x" ]\n  node [ id 1 label @ ]\n]\n')
    with pytest.raises(GraphError, match=r"bad\.gml:3: unexpected '@'"):
        import_zoo(bad, tmp_path / "out.yaml")


def test_hyperedge_nodes_stay_nodes_and_are_reported(tmp_path: Path) -> None:
    source = tmp_path / "bus.gml"
    source.write_text(
        'graph [\n  node [ id 0 label "A" ]\n  node [ id 1 label "B" ]\n  node [ id 2 label "Ring" hyperedge 1 ]\n'
        "  edge [ source 0 target 2 ]\n  edge [ source 1 target 2 ]\n]\n"
    )
    report, topology = _import(tmp_path, source, ZooOptions(default_delay_ms=0.5))
    assert report.hyperedges == ["Ring"] and list(topology["nodes"]) == ["A", "B", "Ring"]
    assert "# kept: 1 hyperedge nodes" in (tmp_path / "topology.yaml").read_text()


def test_more_links_than_the_default_pool_holds_get_the_whole_benchmarking_range(tmp_path: Path) -> None:
    # 198.18.0.0/16 holds 2**14 = 16,384 /30s: one link more and the file names 198.18.0.0/15.
    graph = RawGraph(tmp_path / "g.graphml", nodes=[RawNode("a", 1), RawNode("b", 2)])
    graph.edges = [RawEdge("a", "b", 3)] * 2**14
    assert "addressing" not in convert(graph, ZooOptions())[0]
    graph.edges.append(RawEdge("a", "b", 4))
    topology, report = convert(graph, ZooOptions())
    assert topology["addressing"] == {"ipv4": "198.18.0.0/15"} and report.parallel_links == 2**14


# --------------------------------------------------------------------------- hostile input


def test_malformed_graphml_is_refused_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.graphml"
    source.write_text('<?xml version="1.0"?>\n<graphml>\n  <graph>\n    <node id="a">\n  </graph>\n</graphml>\n')
    with pytest.raises(GraphError, match=r"bad\.graphml:5: not well-formed XML \(mismatched tag, column 5\)"):
        import_zoo(source, tmp_path / "out.yaml")
    source.write_text(_graphml(_node("0", "A") + _node("0", "B"), ""))
    with pytest.raises(GraphError, match=r"bad\.graphml:9: node id '0' is used twice"):
        import_zoo(source, tmp_path / "out.yaml")
    source.write_text(_graphml(_node("0", "A", (95.0, 0.0)), ""))
    with pytest.raises(GraphError, match=r"bad\.graphml:8: node 0: latitude 95.0 or longitude 0.0 is off the globe"):
        import_zoo(source, tmp_path / "out.yaml")
    source.write_text(_graphml("", '    <hyperedge><endpoint node="0"/></hyperedge>\n'))
    with pytest.raises(GraphError, match=r"bad\.graphml:8: a <hyperedge> joins more than two nodes"):
        import_zoo(source, tmp_path / "out.yaml")
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize(
    "prologue",
    [
        # The billion laughs: refused at the DOCTYPE, before any entity is declared or expanded.
        '<!DOCTYPE g [\n <!ENTITY a "aaaaaaaaaa">\n <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
        ' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n',
        # An external entity (a file of this host): never read.
        '<!DOCTYPE g [ <!ENTITY secret SYSTEM "file:///etc/shadow"> ]>\n',
        # An external DTD.
        '<!DOCTYPE graphml SYSTEM "http://example.invalid/graphml.dtd">\n',
    ],
)
def test_doctype_and_entities_are_refused(tmp_path: Path, prologue: str) -> None:
    source = tmp_path / "bomb.graphml"
    source.write_text('<?xml version="1.0"?>\n' + prologue + '<graphml><graph><node id="&c;"/></graph></graphml>\n')
    with pytest.raises(GraphError, match=r"bomb\.graphml:2: a DOCTYPE \(DTD\) is refused"):
        import_zoo(source, tmp_path / "out.yaml")


def test_oversized_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.graphml"
    with big.open("wb") as handle:  # sparse: the size is refused before anything is read
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(GraphError, match=r"big\.graphml: file is 33,554,433 bytes; the limit is 32 MiB"):
        import_zoo(big, tmp_path / "out.yaml")
    with pytest.raises(GraphError, match=r"missing\.graphml: file not found"):
        import_zoo(tmp_path / "missing.graphml", tmp_path / "out.yaml")
    deep = tmp_path / "deep.graphml"
    deep.write_text("<graphml><graph>" + "<node id='x'>" * 40 + "</node>" * 40 + "</graph></graphml>")
    with pytest.raises(GraphError, match=r"deep\.graphml:1: elements nest more than 16 deep"):
        import_zoo(deep, tmp_path / "out.yaml")
    deep.write_text("graph [" + " x [" * 40 + " ]" * 41)
    with pytest.raises(GraphError, match=r"lists nest more than 16 deep"):
        import_zoo(deep.rename(tmp_path / "deep.gml"), tmp_path / "out.yaml")
    with pytest.raises(GraphError, match=r"route factor 0\.5: give one between 1 and 10"):
        import_zoo(ZOO / "Aarnet.graphml", tmp_path / "out.yaml", ZooOptions(route_factor=0.5))


def test_the_import_words_keep_containerlab_working() -> None:
    none: dict[str, Any] = {}
    assert zoo_request(["lab.clab.yml"], none) == (Path("lab.clab.yml"), None)
    path, options = zoo_request(["zoo", "net.graphml"], {"route_factor": 2.0, "default_delay": "3ms"})
    assert path == Path("net.graphml") and options == ZooOptions(route_factor=2.0, default_delay_ms=3.0)
    assert zoo_request(["net.gml"], none)[1] == ZooOptions()  # the suffix says it, too
    with pytest.raises(BadInput, match="--attach: only for a containerlab lab"):
        zoo_request(["zoo", "net.graphml"], {"attach": True})
    with pytest.raises(BadInput, match="--route-factor: only for `drill import zoo FILE`"):
        zoo_request(["lab.clab.yml"], {"route_factor": 2.0})
    with pytest.raises(BadInput, match="drill import takes one file"):
        zoo_request(["lab.clab.yml", "other"], none)


# --------------------------------------------------------------------------- deployed (root)


@pytest.mark.netns
def test_an_imported_backbone_deploys_and_its_delay_is_in_force(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """AARNet (19 namespaces, 24 links) deployed and torn down; a ping over Sydney2-Melbourne2
    (5.35 ms each way) takes at least 10.7 ms: the derived delay is in force (a lower bound: an
    emulated delay is never shorter; nothing is asserted about how much longer)."""
    from drills import lifecycle
    from drills.netns.backend import namespace_name

    import_zoo(ZOO / "Aarnet.graphml", tmp_path / "aarnet.yaml")
    (tmp_path / "s.yaml").write_text("version: 1\nname: aarnet\ntopology: aarnet.yaml\n")
    try:
        up = lifecycle.up(tmp_path / "s.yaml", state_dir)
        link = next(link for link in up.topology.links if link.name == "Sydney2-Melbourne2")
        assert link.b.ipv4 is not None
        sydney = namespace_name(up.meta.run_id, link.a.node)
        ping = subprocess.run(
            ["ip", "netns", "exec", sydney, "ping", "-c", "3", "-i", "0.2", "-W", "2", str(link.b.ipv4.ip)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        rtt_min_ms = float(ping.stdout.rsplit("=", 1)[1].split("/")[0])
        assert rtt_min_ms >= 2 * 5.35, ping.stdout
        _run_id, report = lifecycle.down(state_dir, up.meta.run_id)
        assert report.clean
        assert host_snapshot.leftovers() == []
    finally:
        lifecycle.clean(state_dir, include_up=True)
