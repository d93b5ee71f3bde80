"""The graph an Internet Topology Zoo file holds, as read (before any drills meaning is given to
it), the bounds every reader keeps, and the error that names the file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drills.errors import BadInput

MAX_FILE_BYTES = 32 * 1024 * 1024
"""The largest graph file read (the Zoo's largest, Kdl, is about 1 MB as GraphML)."""
MAX_NODES = 20_000
"""Nodes of one graph file; drills itself deploys at most `drills.scenario.limits.MAX_NODES`."""
MAX_EDGES = 100_000
"""Edges of one graph file."""
MAX_VALUE_CHARS = 4_096
"""One attribute's value (a label, a URL, a coordinate)."""
MAX_ATTRIBUTES = 256
"""Attributes of one node, edge or graph."""
MAX_DEPTH = 16
"""Nesting of elements (GraphML) or lists (GML): the Zoo's files nest four deep."""


class GraphError(BadInput):
    """A graph file we cannot use: `file:line: what; what to do`."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


@dataclass
class RawNode:
    """A node as written: its id, where it starts, and its attributes by name."""

    id: str
    line: int
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class RawEdge:
    """An edge as written (undirected: the Zoo's graphs are)."""

    source: str
    target: str
    line: int
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class RawGraph:
    """A whole graph file: its own attributes (the Zoo's metadata: Network, Source, ...), nodes, edges."""

    path: Path
    meta: dict[str, str] = field(default_factory=dict)
    nodes: list[RawNode] = field(default_factory=list)
    edges: list[RawEdge] = field(default_factory=list)

    def add_node(self, node: RawNode) -> None:
        if len(self.nodes) >= MAX_NODES:
            raise GraphError(self.path, node.line, f"more than {MAX_NODES:,} nodes; this importer reads at most that many")
        self.nodes.append(node)

    def add_edge(self, edge: RawEdge) -> None:
        if len(self.edges) >= MAX_EDGES:
            raise GraphError(self.path, edge.line, f"more than {MAX_EDGES:,} edges; this importer reads at most that many")
        self.edges.append(edge)


def set_attr(path: Path, line: int, attrs: dict[str, str], name: str, value: str) -> None:
    """Record one attribute, within the bounds."""
    if len(value) > MAX_VALUE_CHARS:
        raise GraphError(path, line, f"the value of {name[:40]!r} is {len(value):,} characters; at most {MAX_VALUE_CHARS:,}")
    if name not in attrs and len(attrs) >= MAX_ATTRIBUTES:
        raise GraphError(path, line, f"more than {MAX_ATTRIBUTES} attributes on one element")
    attrs[name] = value
