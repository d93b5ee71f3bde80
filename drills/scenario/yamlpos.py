"""Read YAML into plain data while remembering where every key and value came from.

PyYAML's composer gives nodes with marks; we turn them into dicts/lists/scalars and a map from
key path to (file, line, column), so that every later check can point at the exact spot.
The resolver follows YAML 1.2's core schema: only `true`/`false` are booleans (a node named
`no` stays a string) and `1:30` stays a string (our duration parser reads it as a clock time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drills.errors import Problem

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """A position in a file, 1-based."""

    file: str
    line: int
    column: int


@dataclass
class Located:
    """Plain data from one YAML document plus the position of each value and each key."""

    data: Any
    values: dict[KeyPath, Mark] = field(default_factory=dict)
    keys: dict[KeyPath, Mark] = field(default_factory=dict)

    def mark(self, path: KeyPath, *, key: bool = False) -> Mark | None:
        """Best position for `path`: the key or value itself, else its nearest parent."""
        table = self.keys if key else self.values
        probe = path
        while True:
            if probe in table:
                return table[probe]
            if key and probe in self.values:
                return self.values[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def graft(self, prefix: KeyPath, other: Located) -> None:
        """Put `other` (an included file) under `prefix`, keeping its own file positions."""
        for path, mark in other.values.items():
            self.values[prefix + path] = mark
        for path, mark in other.keys.items():
            self.keys[prefix + path] = mark


class _Core12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans and integers."""


_Core12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Core12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Core12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)


class YamlError(Exception):
    """The text is not YAML we accept; carries the problems found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _path_text(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def path_text(path: KeyPath) -> str:
    """`('topology', 'links', 2, 'endpoints')` -> `topology.links[2].endpoints`."""
    return _path_text(path)


def load_located(text: str, file: str) -> Located:
    """Parse one YAML document from `text`; raises YamlError with positions on bad input."""
    try:
        node = yaml.compose(text, Loader=_Core12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = exc.problem or "not valid YAML"
        context, noticed = exc.context_mark, exc.problem_mark
        if exc.context and not exc.context.startswith("while "):
            what = f"{exc.context}, {what}"  # "expected a single document..., but found another"
        elif exc.context and context and noticed and (context.line, context.column) != (noticed.line, noticed.column):
            # The spot where PyYAML noticed is often well after the mistake (an unclosed bracket
            # or quote): say where the construct it was reading started.
            what += f" ({exc.context} that starts at line {context.line + 1}, column {context.column + 1})"
        raise YamlError(
            [Problem(file, line, column, "", f"YAML syntax: {what}; check indentation, quoting and brackets")]
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError([Problem(file, 0, 0, "", f"YAML error: {exc}")]) from None
    located = Located(data=None)
    if node is None:
        return located
    problems: list[Problem] = []
    constructor = _Core12Loader(text)
    located.data = _convert(node, (), file, located, constructor, problems)
    constructor.dispose()
    if problems:
        raise YamlError(problems)
    return located


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(
    node: yaml.Node,
    path: KeyPath,
    file: str,
    located: Located,
    constructor: yaml.SafeLoader,
    problems: list[Problem],
) -> Any:
    located.values[path] = _mark(file, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    Problem(
                        file,
                        *_lc(key_node),
                        _path_text(path),
                        "YAML merge keys (<<) are not supported; repeat the keys instead",
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file, *_lc(key_node), _path_text(path), "a key must be a plain string"))
                continue
            try:
                key = str(constructor.construct_object(key_node))
            except Exception as exc:  # a constructor of an explicit tag can fail any way
                problems.append(
                    Problem(
                        file, *_lc(key_node), _path_text(path), f"cannot read this key {_unreadable(key_node, exc)}"
                    )
                )
                continue
            if key in result:
                problems.append(
                    Problem(
                        file,
                        *_lc(key_node),
                        _path_text((*path, key)),
                        f"duplicate key '{key}'; a key may appear once in a mapping",
                    )
                )
                continue
            located.keys[(*path, key)] = _mark(file, key_node)
            result[key] = _convert(value_node, (*path, key), file, located, constructor, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(child, (*path, index), file, located, constructor, problems)
            for index, child in enumerate(node.value)
        ]
    try:
        return constructor.construct_object(node, deep=True)
    except Exception as exc:  # a constructor of an explicit tag can fail any way
        # An explicit tag that does not fit the value (`!!int x`, `!!binary %`) or one we do
        # not construct (`!!python/object`).
        problems.append(Problem(file, *_lc(node), _path_text(path), f"cannot read this value {_unreadable(node, exc)}"))
        return None


def _unreadable(node: yaml.Node, exc: Exception) -> str:
    """One line on why PyYAML could not construct a tagged scalar (its own messages span lines)."""
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    detail = ""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        detail = exc.problem
    elif type(exc) is ValueError and str(exc):
        detail = str(exc).splitlines()[0]
    return f"as {tag}{f' ({detail})' if detail else ''}; remove the tag or quote the value"


def _lc(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def read_located(path: Path) -> Located:
    """Read and parse a file; a missing or unreadable file is a YamlError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError([Problem(str(path), 0, 0, "", "file not found; check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError([Problem(str(path), 0, 0, "", f"cannot read file: {exc}")]) from None
    return load_located(text, str(path))
