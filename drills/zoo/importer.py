"""`drill import zoo FILE.graphml -o topology.yaml`: an Internet Topology Zoo graph (GraphML or
GML) as a drills topology file, with delays from geography.

- nodes: one netns node per graph node, named from its label (`drills.zoo.names`), the label kept
  as the node's `label:`; `--internal-only` leaves out the nodes the Zoo marks `Internal 0`
  (peers and exchanges outside the network) and their edges.
- links: one per edge, `eth1`, `eth2`, ... on each node in edge order, addressed automatically
  (/30s from 198.18.0.0/16, loopbacks from 198.19.0.0/16). One-way `delay` = great-circle
  distance (haversine, R = 6371 km) × route factor (default 1.5) ÷ 2/3 c (199,861.6 km/s),
  rounded to 0.01 ms; a link with an end without coordinates gets `--default-delay`, else the
  median delay of the links that have both ends located. `rate` from LinkSpeedRaw, LinkSpeed and
  LinkSpeedUnits, else read from LinkLabel (a range or `<` bound: its top).
- parallel edges become parallel links (`A-B`, `A-B-2`: two fibres are two links), self-loops are
  dropped; both are reported. Nodes the Zoo marks `hyperedge 1` (a shared medium drawn as a node)
  stay nodes, routing between their links, and are reported.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drills.errors import BadInput
from drills.scenario import limits, units, userfile
from drills.zoo import geo
from drills.zoo.gml import parse_gml
from drills.zoo.graph import MAX_FILE_BYTES, GraphError, RawGraph, RawNode
from drills.zoo.graphml import parse_graphml
from drills.zoo.names import NODE_NAME_CHARS, Names, plain

_LINKS_IN_DEFAULT_POOL = 2**14  # /30s in the default `addressing.ipv4`, 198.18.0.0/16
FALLBACK_DELAY_MS = 1.0
"""A link's delay when no link of the graph has both ends located and no `--default-delay` is given."""


@dataclass(frozen=True)
class ZooOptions:
    """How to turn a graph into a topology."""

    route_factor: float = geo.DEFAULT_ROUTE_FACTOR
    default_delay_ms: float | None = None  # None: the median of the located links' delays
    capacity: bool = True  # write each link's `rate` when its attributes give one
    internal_only: bool = False


@dataclass
class ImportReport:
    """What was imported, and what was guessed."""

    source: Path
    network: str
    nodes: int = 0
    links: int = 0
    route_factor: float = geo.DEFAULT_ROUTE_FACTOR
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (label, name) where they differ
    unlocated: list[str] = field(default_factory=list)  # nodes without (valid) coordinates
    default_delay_ms: float = 0.0
    default_delay_why: str = ""
    defaulted_links: int = 0
    colocated_links: int = 0  # both ends at the same place: no delay written
    parallel_links: int = 0
    self_loops: list[int] = field(default_factory=list)  # their lines
    external_left_out: int = 0
    hyperedges: list[str] = field(default_factory=list)  # nodes the Zoo marks `hyperedge 1`
    capacity: Counter[str] = field(default_factory=Counter)  # exact | label | bound | unknown | too-fast
    delays_ms: dict[str, float] = field(default_factory=dict)  # link -> derived one-way delay

    def summary(self) -> list[str]:
        """The report as lines for people: what was read, and every guess."""
        lines = [f"{self.source}: {self.network}: {self.nodes} nodes, {self.links} links"]
        located = self.links - self.defaulted_links
        lines.append(
            f"delay: {located} links from great-circle distance × {self.route_factor:g} ÷ 2/3 c"
            + (f" ({self.colocated_links} between co-located nodes: no delay)" if self.colocated_links else "")
        )
        if self.unlocated:
            shown = ", ".join(self.unlocated[:10]) + (", ..." if len(self.unlocated) > 10 else "")
            lines.append(f"guessed: {len(self.unlocated)} nodes without coordinates ({shown})")
            lines.append(
                f"guessed: {self.defaulted_links} links touching them get {self.default_delay_ms:.2f} ms "
                f"({self.default_delay_why})"
            )
        cap = self.capacity
        if cap:
            lines.append(
                f"rate: {cap['exact']} exact (LinkSpeed), {cap['label']} read from LinkLabel, "
                f"{cap['bound']} guessed as the top of a range or `<` bound, {cap['unknown']} unknown (no rate)"
                + (f", {cap['too-fast']} above 400 Gbit/s (no rate)" if cap["too-fast"] else "")
            )
        if self.renamed:
            lines.append(f"renamed: {len(self.renamed)} nodes (each keeps its label), e.g. " + ", ".join(
                f"{label!r} -> {name}" for label, name in self.renamed[:3]
            ))
        if self.parallel_links:
            lines.append(f"parallel edges: {self.parallel_links} extra links, named NAME-2, NAME-3, ...")
        if self.self_loops:
            lines.append(f"dropped: {len(self.self_loops)} self-loops (lines {', '.join(map(str, self.self_loops[:10]))})")
        if self.hyperedges:
            lines.append(
                f"kept: {len(self.hyperedges)} hyperedge nodes (a shared medium in the Zoo) as nodes that route "
                f"between their links: {', '.join(self.hyperedges[:5])}"
            )
        if self.external_left_out:
            lines.append(f"left out: {self.external_left_out} external nodes (Internal 0), --internal-only")
        return lines


def read_graph(path: Path) -> RawGraph:
    """The graph in `path`: GraphML (.graphml, .xml, or text starting with `<`) or GML."""
    try:
        data = userfile.read_bytes(path, MAX_FILE_BYTES)
        if path.suffix.lower() in (".graphml", ".xml") or data.lstrip()[:1] == b"<":
            return parse_graphml(path, data)
        return parse_gml(path, userfile.decode(data))
    except userfile.FileRefused as exc:
        raise GraphError(path, exc.line, exc.reason) from None


Place = tuple[float, float]  # latitude, longitude in degrees


def _coordinates(path: Path, node: RawNode) -> Place | None:
    lat_text, lon_text = node.attrs.get("Latitude"), node.attrs.get("Longitude")
    if lat_text is None or lon_text is None:
        return None
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise GraphError(path, node.line, f"node {node.id}: coordinates {lat_text[:40]!r}, {lon_text[:40]!r} are not numbers") from None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise GraphError(path, node.line, f"node {node.id}: latitude {lat} or longitude {lon} is off the globe")
    return lat, lon


def _rate_text(rate_bps: int) -> str:
    for unit, factor in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if rate_bps % factor == 0:
            return f"{rate_bps // factor}{unit}"
    return f"{rate_bps}bit"


def _one_line(text: str, limit: int = 200) -> str:
    """Metadata for a comment line: printable, one line, bounded (a newline must not end the comment)."""
    return "".join(c if c.isprintable() else " " for c in text)[:limit].strip()


def _nodes(graph: RawGraph, options: ZooOptions, report: ImportReport) -> tuple[dict[str, Any], dict[str, str], dict[str, Place]]:
    """The nodes by name, each graph id's name ("" when left out), and the located nodes' places."""
    path = graph.path
    names = Names()
    nodes: dict[str, Any] = {}
    node_names: dict[str, str] = {}
    located: dict[str, Place] = {}
    for node in graph.nodes:
        if node.id in node_names:
            raise GraphError(path, node.line, f"node id {node.id[:40]!r} is used twice")
        if options.internal_only and node.attrs.get("Internal", "1").strip() == "0":
            node_names[node.id] = ""
            report.external_left_out += 1
            continue
        label = node.attrs.get("label", "").strip()
        base = plain(label, NODE_NAME_CHARS) or plain(f"n{node.id}", NODE_NAME_CHARS) or f"n{len(nodes)}"
        name = names.unique(base, NODE_NAME_CHARS)
        node_names[node.id] = name
        if label and label != name:
            report.renamed.append((label, name))
        nodes[name] = {"label": _one_line(label)} if label else {}
        if node.attrs.get("hyperedge", "").strip() == "1":
            report.hyperedges.append(name)
        where = _coordinates(path, node)
        if where is None:
            report.unlocated.append(name)
        else:
            located[name] = where
    if len(nodes) > limits.MAX_NODES:
        raise GraphError(path, 0, f"{len(nodes):,} nodes; drills deploys at most {limits.MAX_NODES:,} on a host")
    return nodes, node_names, located


def convert(graph: RawGraph, options: ZooOptions) -> tuple[dict[str, Any], ImportReport]:
    """The topology (as the YAML mapping) of `graph`, and the report of what was guessed."""
    path = graph.path
    report = ImportReport(path, _one_line(graph.meta.get("Network") or graph.meta.get("label") or path.stem, 80))
    report.route_factor = options.route_factor
    nodes, node_names, located = _nodes(graph, options, report)
    ends: list[tuple[str, str, dict[str, str]]] = []
    for edge in graph.edges:
        a, b = node_names.get(edge.source), node_names.get(edge.target)
        if a is None or b is None:
            missing = edge.source if a is None else edge.target
            raise GraphError(path, edge.line, f"edge from {edge.source[:40]!r} to {edge.target[:40]!r}: no node {missing[:40]!r}")
        if not a or not b:
            continue  # an end left out by --internal-only
        if a == b:
            report.self_loops.append(edge.line)
            continue
        ends.append((a, b, edge.attrs))
    if len(ends) > limits.MAX_LINKS:
        raise GraphError(path, 0, f"{len(ends):,} links; drills deploys at most {limits.MAX_LINKS:,}")

    derived: list[float | None] = [
        geo.delay_ms(geo.great_circle_km(*located[a], *located[b]), options.route_factor)
        if a in located and b in located
        else None
        for a, b, _ in ends
    ]
    default_ms = _default_delay(options, [d for d in derived if d is not None], report)
    link_names, ifaces, seen_pairs = Names(), Counter[str](), Counter[frozenset[str]]()
    links: list[dict[str, Any]] = []
    for (a, b, attrs), delay in zip(ends, derived, strict=True):
        seen_pairs[frozenset((a, b))] += 1
        report.parallel_links += seen_pairs[frozenset((a, b))] > 1
        ifaces[a] += 1
        ifaces[b] += 1
        side = (limits.MAX_NAME_BYTES - 1) // 2
        name = link_names.unique(f"{a[:side]}-{b[:side]}".replace("--", "-"))
        link: dict[str, Any] = {"name": name, "endpoints": [f"{a}:eth{ifaces[a]}", f"{b}:eth{ifaces[b]}"]}
        if delay is None:
            report.defaulted_links += 1
            delay = default_ms
        elif delay == 0:
            report.colocated_links += 1
        report.delays_ms[name] = delay
        if delay > 0:
            link["delay"] = f"{delay:.2f}ms"
        rate = _rate(attrs, options, report)
        if rate:
            link["rate"] = rate
        links.append(link)
    report.nodes, report.links = len(nodes), len(links)
    topology: dict[str, Any] = {"nodes": nodes, "links": links}
    if len(links) > _LINKS_IN_DEFAULT_POOL:
        # The default link pool, 198.18.0.0/16, holds 16,384 /30s; the whole benchmarking range
        # holds 32,768, and automatic loopbacks (198.19.0.0/16) skip the subnets links took.
        topology = {"addressing": {"ipv4": "198.18.0.0/15"}, **topology}
    return topology, report


def _default_delay(options: ZooOptions, derived: list[float], report: ImportReport) -> float:
    if options.default_delay_ms is not None:
        report.default_delay_ms, report.default_delay_why = options.default_delay_ms, "--default-delay"
    elif derived:
        report.default_delay_ms = round(statistics.median(derived), 2)
        report.default_delay_why = "the median of the located links' delays; set it with --default-delay"
    else:
        report.default_delay_ms = FALLBACK_DELAY_MS
        report.default_delay_why = "no link has both ends located; set it with --default-delay"
    return report.default_delay_ms


def _rate(attrs: dict[str, str], options: ZooOptions, report: ImportReport) -> str | None:
    if not options.capacity:
        return None
    found = geo.capacity(attrs)
    if found is None:
        report.capacity["unknown"] += 1
        return None
    if found.rate_bps > limits.MAX_RATE_BPS or found.rate_bps < limits.MIN_RATE_BPS:
        report.capacity["too-fast"] += 1
        return None
    report.capacity["bound" if found.bound else "exact" if found.source != "LinkLabel" else "label"] += 1
    return _rate_text(found.rate_bps)


def _header(graph: RawGraph, report: ImportReport, out: Path) -> str:
    meta = {key: _one_line(value) for key, value in graph.meta.items()}
    zoo = "topology zoo" in meta.get("Creator", "").lower()
    lines = [f"Imported from {graph.path.name} by `drill import zoo`: {report.network}, {report.nodes} nodes, {report.links} links."]
    if zoo:
        lines.append(
            "Data: The Internet Topology Zoo (www.topology-zoo.org), CC BY 4.0; S. Knight et al., "
            "IEEE JSAC 29(9), 2011."
        )
    source = ", ".join(f"{key} {meta[key]}" for key in ("Source", "DateObtained", "NetworkDate") if meta.get(key))
    if source:
        lines.append(f"Network data: {source}.")
    lines.append(
        f"delay (one way) = great-circle distance (haversine, R 6371 km) × route factor {report.route_factor:g} "
        "÷ 199,861.6 km/s (2/3 c), rounded to 0.01 ms."
    )
    kinds = ("guessed", "rate", "dropped", "left out", "kept")
    lines += [line for line in report.summary()[1:] if line.startswith(kinds)]
    return "".join(f"# {line}\n" for line in lines)


_ZOO_SUFFIXES = (".graphml", ".gml")
_CLAB_ONLY = ("image", "attach", "topology_data")
_ZOO_ONLY = ("route_factor", "default_delay", "no_rate", "internal_only")


def zoo_request(words: list[str], given: dict[str, Any]) -> tuple[Path, ZooOptions | None]:
    """`drill import`'s source words and options: (file, ZooOptions) for `zoo FILE` (or a FILE
    ending in .graphml or .gml), (file, None) for a containerlab lab; BadInput for anything else."""
    if words == ["zoo"]:
        raise BadInput("drill import zoo: give the graph file: drill import zoo FILE.graphml -o topology.yaml")
    named = words[0] == "zoo" and len(words) == 2
    is_zoo = named or (len(words) == 1 and Path(words[0]).suffix.lower() in _ZOO_SUFFIXES)
    if not is_zoo and len(words) != 1:
        raise BadInput("drill import takes one file: LAB.clab.yml (containerlab), or `zoo FILE.graphml` (Topology Zoo)")
    wrong = [name for name in (_CLAB_ONLY if is_zoo else _ZOO_ONLY) if given.get(name)]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise BadInput(f"{flags}: only for {'a containerlab lab' if is_zoo else '`drill import zoo FILE`'}")
    if not is_zoo:
        return Path(words[0]), None
    delay = given.get("default_delay")
    try:
        delay_ms = units.parse_duration_s(delay) * 1000.0 if delay is not None else None
    except units.UnitError as exc:
        raise BadInput(f"--default-delay {delay!r}: {exc}") from None
    return Path(words[-1]), ZooOptions(
        route_factor=given.get("route_factor") or geo.DEFAULT_ROUTE_FACTOR,
        default_delay_ms=delay_ms,
        capacity=not given.get("no_rate"),
        internal_only=bool(given.get("internal_only")),
    )


def import_zoo(source: Path, out: Path, options: ZooOptions | None = None) -> ImportReport:
    """Write the drills topology of the Topology Zoo graph `source` (GraphML or GML) to `out`;
    returns what was imported and guessed. GraphError (exit code 2) names the file and line."""
    options = options or ZooOptions()
    if not 1.0 <= options.route_factor <= 10.0:
        raise GraphError(source, 0, f"route factor {options.route_factor:g}: give one between 1 and 10 (default 1.5)")
    if options.default_delay_ms is not None and not 0.0 <= options.default_delay_ms <= 10_000.0:
        raise GraphError(source, 0, f"default delay {options.default_delay_ms:g} ms: give one between 0 and 10000 ms")
    graph = read_graph(source)
    topology, report = convert(graph, options)
    if not topology["nodes"]:
        raise GraphError(source, 0, "the graph has no nodes")
    body = yaml.safe_dump(topology, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    out.write_text(_header(graph, report, out) + body, encoding="utf-8")
    return report
