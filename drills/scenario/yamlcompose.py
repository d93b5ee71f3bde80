"""Compose one YAML document into PyYAML nodes, within bounds.

PyYAML's own composers trust their input: a "billion laughs" (aliases of aliases) composes into a
small graph that explodes into billions of values when walked, a recursive alias (`&a [*a]`)
composes into a cycle, and deep nesting recurses until Python gives up. This composer reads the
parser's events (libyaml's C parser when PyYAML has it: about ten times faster than the pure
Python scanner) without recursion, and counts, while it composes, what walking the graph would
produce: every node and, for every alias, the size of the node it repeats. It stops at the first
event past a bound, with the position:

- `MAX_VALUES` keys and values in all, aliases expanded (a 10,000-link ring holds about 200,000);
- `MAX_DEPTH` levels of nested mappings and lists, aliases expanded (a scenario needs about 8);
- an alias inside the node it names (a cycle), an alias to an anchor not yet defined.

The nodes it returns are plain PyYAML nodes: a constructor builds scalars from them as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_VALUES = 400_000
MAX_DEPTH = 64
_STR_TAG = "tag:yaml.org,2002:str"

_Mark = Any  # yaml.Mark (pure Python parser) or the C parser's equivalent: .line, .column


class ComposeError(Exception):
    """The text is not one YAML document within bounds; `line`/`column` 1-based (0: unknown)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class _Open:
    """A mapping or list being composed: its node, its anchor, and the totals of its children."""

    node: yaml.CollectionNode
    anchor: str | None
    items: list[yaml.Node] = field(default_factory=list)
    size: int = 1  # values walking this node produces, itself included
    height: int = 1  # levels of collections, itself included


@dataclass(frozen=True)
class _Anchored:
    node: yaml.Node
    size: int
    height: int


def token(text: str, limit: int = 40) -> str:
    """A short, quoted, escaped piece of the file for a message: never a control character,
    never more than `limit` characters of the file."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return repr(short)


# A quoted piece of a parser message: kept when it is one of the parser's own token names
# ('<scalar>', '<block end>') or one punctuation character; otherwise it is file content.
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def redact(message: str) -> str:
    """A parser message with any quoted file content replaced by '…'."""

    def keep(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        if re.fullmatch(r"<[a-z ]+>|[^\w\s]", inner):
            return match.group(0)
        return "'…'"

    return _QUOTED.sub(keep, message)


class _Composer:
    def __init__(self, events: Any, resolver: Any, foreign: bool) -> None:
        self.events = events
        self.resolver = resolver
        self.foreign = foreign
        self.produced = 0
        self.stack: list[_Open] = []
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: dict[str, _Open] = {}
        self.implicit_tags: dict[str, str] = {}  # plain scalar -> tag (keys repeat a lot)
        self.root: yaml.Node | None = None
        self.documents = 0

    def fail(self, message: str, mark: _Mark) -> ComposeError:
        return ComposeError(message, mark.line + 1, mark.column + 1)

    def name(self, anchor: str) -> str:
        return "" if self.foreign else f" *{token(anchor)[1:-1]}"

    def count(self, size: int, height: int, mark: _Mark) -> None:
        self.produced += size
        if self.produced > MAX_VALUES:
            raise self.fail(
                f"more than {MAX_VALUES:,} keys and values once YAML aliases are expanded (a scenario needs far fewer); "
                "look for aliases (*NAME) that repeat large blocks",
                mark,
            )
        if len(self.stack) + height > MAX_DEPTH:
            raise self.fail(
                f"mappings and lists nested more than {MAX_DEPTH} levels deep (aliases expanded); "
                "a scenario needs about 8: check the brackets and indentation",
                mark,
            )

    def add(self, node: yaml.Node, size: int, height: int) -> None:
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        top.items.append(node)
        top.size += size
        top.height = max(top.height, height + 1)

    def collection_tag(self, event: yaml.CollectionStartEvent, kind: type[yaml.Node]) -> str:
        if event.tag is not None and event.tag != "!":
            return str(event.tag)
        return str(self.resolver.resolve(kind, None, event.implicit))

    def scalar(self, event: yaml.ScalarEvent) -> None:
        # The hot path (most events): count and add written out, no depth check (a scalar adds
        # no level).
        mark: Any = event.start_mark
        self.produced += 1
        if self.produced > MAX_VALUES:
            self.count(0, 0, mark)
        tag = event.tag
        if tag is None or tag == "!":
            if event.implicit[0]:
                tag = self.implicit_tags.get(event.value)
                if tag is None:
                    tag = self.implicit_tags[event.value] = self.resolver.resolve(
                        yaml.ScalarNode, event.value, event.implicit
                    )
            else:
                tag = _STR_TAG  # quoted or block scalars: what the resolver would say
        node = yaml.ScalarNode(tag, event.value, mark, mark, event.style)
        if event.anchor is not None:
            self.open_anchors.pop(event.anchor, None)
            self.anchors[event.anchor] = _Anchored(node, 1, 0)
        if self.stack:
            top = self.stack[-1]
            top.items.append(node)
            top.size += 1
        else:
            self.root = node

    def start(self, event: yaml.CollectionStartEvent) -> None:
        mark: Any = event.start_mark
        self.count(1, 1, mark)
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        opened = _Open(kind(self.collection_tag(event, kind), [], mark, mark, event.flow_style), event.anchor)
        if event.anchor is not None:
            # A definition takes effect where it starts; an alias to it inside it is a cycle.
            self.anchors.pop(event.anchor, None)
            self.open_anchors[event.anchor] = opened
        self.stack.append(opened)

    def end(self, _event: yaml.CollectionEndEvent) -> None:
        done = self.stack.pop()
        if isinstance(done.node, yaml.MappingNode):
            items = done.items
            done.node.value = list(zip(items[0::2], items[1::2], strict=True))
        else:
            done.node.value = done.items
        if done.anchor is not None and self.open_anchors.get(done.anchor) is done:
            del self.open_anchors[done.anchor]
            self.anchors[done.anchor] = _Anchored(done.node, done.size, done.height)
        self.add(done.node, done.size, done.height)

    def document(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail(
                "expected a single document in the stream, but found another document; "
                "a scenario is one document: remove the `---` line",
                event.start_mark,
            )

    def alias(self, event: yaml.AliasEvent) -> None:
        mark = event.start_mark
        anchor = event.anchor or ""
        if anchor in self.open_anchors:
            raise self.fail(
                f"alias{self.name(anchor)} is inside the block it names (a recursive alias); "
                "write the content out instead",
                mark,
            )
        target = self.anchors.get(anchor)
        if target is None:
            raise self.fail(
                f"alias{self.name(anchor)} names no anchor defined before it; define it first "
                "with &NAME, or remove the *",
                mark,
            )
        self.count(target.size, target.height, mark)
        self.add(target.node, target.size, target.height)

    def compose(self) -> yaml.Node | None:
        handlers: dict[type[yaml.Event], Any] = {
            yaml.ScalarEvent: self.scalar,
            yaml.SequenceStartEvent: self.start,
            yaml.MappingStartEvent: self.start,
            yaml.SequenceEndEvent: self.end,
            yaml.MappingEndEvent: self.end,
            yaml.AliasEvent: self.alias,
            yaml.DocumentStartEvent: self.document,
        }
        get_event = self.events.get_event
        while (event := get_event()) is not None:
            handler = handlers.get(type(event))
            if handler is not None:  # stream start and end, document end: nothing to do
                handler(event)
        return self.root


def _events(text: str, loader: type[yaml.SafeLoader]) -> Any:
    if yaml.__with_libyaml__:
        return yaml.cyaml.CParser(text)  # type: ignore[attr-defined]
    return loader(text)


def compose(text: str, loader: type[yaml.SafeLoader], *, foreign: bool = False) -> yaml.Node | None:
    """The node graph of the single YAML document in `text` (None when it has none), resolved
    with `loader`'s tag resolver. ComposeError on a syntax error or past a bound; with `foreign`
    (a file we were pointed at, maybe not ours), the message quotes nothing from the file."""
    events = _events(text, loader)
    try:
        return _Composer(events, loader(""), foreign).compose()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except yaml.YAMLError:  # a reader error: the text was checked before, so hardly reached
        raise ComposeError("not YAML text; check the file", 0, 0) from None
    finally:
        events.dispose()


def _syntax_error(exc: yaml.MarkedYAMLError) -> ComposeError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    what = exc.problem or "not valid YAML"
    if what == "exceeded maximum nesting depth":  # libyaml's own bound, at 1,000 levels
        return ComposeError(
            f"mappings and lists nested more than {MAX_DEPTH} levels deep; a scenario needs about 8: "
            "check the brackets and indentation",
            line,
            column,
        )
    context, noticed = exc.context_mark, exc.problem_mark
    if exc.context and not exc.context.startswith("while "):
        what = f"{exc.context}, {what}"
    elif exc.context and context and noticed and (context.line, context.column) != (noticed.line, noticed.column):
        # The spot where the parser noticed is often well after the mistake (an unclosed bracket
        # or quote): say where the construct it was reading started.
        what += f" ({exc.context} that starts at line {context.line + 1}, column {context.column + 1})"
    return ComposeError(f"YAML syntax: {redact(what)}; check indentation, quoting and brackets", line, column)
