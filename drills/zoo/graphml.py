"""A bounded, safe GraphML reader (the Internet Topology Zoo's main format).

Safe: the standard library's expat parser, with any DOCTYPE refused at its first line, so no
entity is ever declared (no "billion laughs" expansion, no external entity fetched, no DTD read);
expat is also told never to parse parameter entities. Bounded: the file's size (read with a bound,
`drills.scenario.userfile`), nodes, edges, attributes, value lengths and nesting
(`drills.zoo.graph`). Every error names the file and its line.

Read: `<key>` declarations (with their `<default>`), the first `<graph>`'s own `<data>` (the
Zoo's metadata), its `<node>`s and `<edge>`s with their `<data>`. Refused: nested graphs and
`<hyperedge>`s (a drills link joins two nodes); ignored: `<port>`, `<desc>` and unknown elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from drills.zoo.graph import MAX_DEPTH, MAX_VALUE_CHARS, GraphError, RawEdge, RawGraph, RawNode, set_attr


@dataclass
class _Key:
    name: str
    domain: str  # node | edge | graph | all
    default: str | None = None


@dataclass
class _Reader:
    path: Path
    parser: expat.XMLParserType
    graph: RawGraph
    keys: dict[str, _Key] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    owner: dict[str, str] | None = None  # attributes of the element whose <data> we are in
    data_key: str | None = None
    text: list[str] = field(default_factory=list)
    text_chars: int = 0
    key: _Key | None = None  # the <key> whose <default> we are in
    graphs: int = 0

    def line(self) -> int:
        return int(self.parser.CurrentLineNumber)

    def fail(self, message: str) -> GraphError:
        return GraphError(self.path, self.line(), message)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        name = tag.rpartition(":")[2]
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(f"elements nest more than {MAX_DEPTH} deep; a GraphML graph nests four")
        parent = self.stack[-1] if self.stack else ""
        self.stack.append(name)
        self.text, self.text_chars = [], 0
        if name == "key":
            self.key = _Key(attrs.get("attr.name") or attrs.get("id", ""), attrs.get("for", "all"))
            if "id" not in attrs:
                raise self.fail("<key> without an id")
            self.keys[attrs["id"]] = self.key
        elif name == "graph":
            self.graphs += 1
            if parent != "graphml" or self.graphs > 1:
                raise self.fail("a second (or nested) <graph>: this importer reads one flat graph per file")
            self.owner = self.graph.meta
        elif name == "node" and parent == "graph":
            node = RawNode(self._required(attrs, "id", "node"), self.line())
            self.graph.add_node(node)
            self.owner = node.attrs
        elif name == "edge" and parent == "graph":
            edge = RawEdge(self._required(attrs, "source", "edge"), self._required(attrs, "target", "edge"), self.line())
            self.graph.add_edge(edge)
            self.owner = edge.attrs
        elif name == "hyperedge":
            raise self.fail("a <hyperedge> joins more than two nodes; drills links join two: split it into edges")
        elif name == "data":
            self.data_key = attrs.get("key")
            if self.data_key is None:
                raise self.fail("<data> without a key")

    def _required(self, attrs: dict[str, str], name: str, element: str) -> str:
        value = attrs.get(name)
        if not value:
            raise self.fail(f"<{element}> without a {name!r} attribute")
        if len(value) > MAX_VALUE_CHARS:
            raise self.fail(f"<{element}> {name} is {len(value):,} characters long")
        return value

    def end(self, tag: str) -> None:
        name = self.stack.pop()
        text = "".join(self.text).strip()
        if name == "data" and self.owner is not None and self.data_key is not None:
            key = self.keys.get(self.data_key)
            set_attr(self.path, self.line(), self.owner, key.name if key else self.data_key, text)
            self.data_key = None
        elif name == "default" and self.key is not None:
            self.key.default = text
        elif name == "key":
            self.key = None
        elif name in ("node", "edge"):
            self.owner = self.graph.meta
        elif name == "graph":
            self.owner = None
        self.text, self.text_chars = [], 0

    def chars(self, data: str) -> None:
        self.text_chars += len(data)
        if self.text_chars > MAX_VALUE_CHARS:
            raise self.fail(f"a value longer than {MAX_VALUE_CHARS:,} characters")
        self.text.append(data)

    def defaults(self) -> None:
        """Values of `<key>` defaults, where an element does not give its own."""
        for domain, owners in (("node", [n.attrs for n in self.graph.nodes]), ("edge", [e.attrs for e in self.graph.edges])):
            for key in self.keys.values():
                if key.default is not None and key.domain in (domain, "all"):
                    for attrs in owners:
                        attrs.setdefault(key.name, key.default)


def _refuse_dtd(*_args: object) -> None:
    raise _Refused("a DOCTYPE (DTD) is refused: entities could expand without bound or fetch files; remove it")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("an entity declaration is refused (no DTD, no entities); remove it")


def _refuse_external(*_args: object) -> int:
    raise _Refused("an external entity is refused (no DTD, no entities); remove it")


class _Refused(Exception):
    pass


def parse_graphml(path: Path, data: bytes) -> RawGraph:
    """The graph of the GraphML document `data` (read from `path`), or GraphError with the line."""
    parser = expat.ParserCreate()
    reader = _Reader(path, parser, RawGraph(path))
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.chars
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise reader.fail(str(exc)) from None
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) if exc.code is not None else "error"
        raise GraphError(path, exc.lineno, f"not well-formed XML ({reason}, column {exc.offset + 1})") from None
    except RecursionError:
        raise reader.fail("elements nest too deep") from None
    if reader.graphs == 0:
        raise GraphError(path, 0, "no <graph> element: not a GraphML file (the Topology Zoo's .graphml files have one)")
    reader.defaults()
    return reader.graph
