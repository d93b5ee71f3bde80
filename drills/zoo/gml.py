"""A small bounded GML reader (the Internet Topology Zoo's other format).

GML is `key value` pairs, where a value is a number, a "string" (no escapes; the Zoo writes
`&quot;` style entities, kept as written) or a list `[ ... ]` of pairs. The reader wants one
`graph [ ... ]` holding scalar pairs (the graph's metadata), `node [ id N ... ]` and
`edge [ source N target M ... ]`; lists inside a node or edge (`graphics [ ... ]`) are skipped.
Bounded by the file's size, the limits of `drills.zoo.graph`, and nesting; errors name the line
and quote nothing of the file until it has shown a `graph [` (drills runs as root: the file named
may be anyone's).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from drills.zoo.graph import MAX_DEPTH, GraphError, RawEdge, RawGraph, RawNode, set_attr

_TOKEN = re.compile(
    r'(?P<space>[ \t\r\n]+)|(?P<comment>#[^\n]*)|(?P<open>\[)|(?P<close>\])'
    r'|(?P<string>"[^"]*")|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'
    r"|(?P<key>[A-Za-z_][A-Za-z0-9_]*)"
)

Token = tuple[str, str, int]  # kind, text, line


def _tokens(path: Path, text: str) -> Iterator[Token]:
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            shown = repr(text[pos]) if text[pos].isprintable() else f"U+{ord(text[pos]):04X}"
            raise GraphError(path, line, f"unexpected {shown}: GML holds keys, numbers, \"strings\" and [ lists ]")
        kind, value = match.lastgroup or "", match.group()
        if kind not in ("space", "comment"):
            yield kind, value.strip('"') if kind == "string" else value, line
        line += value.count("\n")
        pos = match.end()


class _Parser:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.tokens = _tokens(path, text)
        self.line = 1

    def next(self) -> Token | None:
        token = next(self.tokens, None)
        if token is not None:
            self.line = token[2]
        return token

    def fail(self, message: str, line: int | None = None) -> GraphError:
        return GraphError(self.path, self.line if line is None else line, message)

    def pairs(self, depth: int) -> Iterator[tuple[str, str | None, int]]:
        """(key, scalar value or None for a list, line) of the list just opened, up to its `]`.
        A list value's items must be read (`pairs`) or skipped (`skip`) before the next pair."""
        if depth > MAX_DEPTH:
            raise self.fail(f"lists nest more than {MAX_DEPTH} deep")
        while True:
            token = self.next()
            if token is None:
                if depth == 0:
                    return
                raise self.fail("the file ends inside a list: a `]` is missing")
            kind, key, line = token
            if kind == "close":
                if depth == 0:
                    raise self.fail("a `]` closes no list")
                return
            if kind != "key":
                raise self.fail(f"expected a key, found a {kind}")  # not quoted: the file may not be a graph's
            value = self.next()
            if value is None:
                raise self.fail("the file ends after a key: a value is missing")
            if value[0] == "open":
                yield key, None, line
            elif value[0] in ("string", "number"):
                yield key, value[1], line
            else:
                raise self.fail(f"a key followed by a {value[0]}, not a value (a number, a \"string\" or a [ list ])")

    def skip(self, depth: int) -> None:
        for _key, value, _line in self.pairs(depth):
            if value is None:
                self.skip(depth + 1)


def parse_gml(path: Path, text: str) -> RawGraph:
    """The graph of the GML text (read from `path`), or GraphError with the line."""
    parser = _Parser(path, text)
    graph = RawGraph(path)
    found = False
    for key, value, _line in parser.pairs(0):
        if value is not None:
            continue  # `Creator "..."` and the like before the graph
        if key != "graph" or found:
            parser.skip(1)
            continue
        found = True
        for inner, scalar, at in parser.pairs(1):
            if scalar is not None:
                set_attr(path, at, graph.meta, inner, scalar)
            elif inner == "node":
                attrs = _element(parser)
                graph.add_node(RawNode(_required(parser, attrs, "id", "node", at), at, attrs))
            elif inner == "edge":
                attrs = _element(parser)
                source, target = (_required(parser, attrs, end, "edge", at) for end in ("source", "target"))
                graph.add_edge(RawEdge(source, target, at, attrs))
            else:
                parser.skip(2)
    if not found:
        raise GraphError(path, 0, "no `graph [ ... ]`: not a GML graph file")
    return graph


def _element(parser: _Parser) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for key, value, at in parser.pairs(2):
        if value is None:
            parser.skip(3)
        else:
            set_attr(parser.path, at, attrs, key, value)
    return attrs


def _required(parser: _Parser, attrs: dict[str, str], name: str, element: str, line: int) -> str:
    if name not in attrs:
        raise parser.fail(f"{element} without `{name}`", line)
    return attrs[name]
