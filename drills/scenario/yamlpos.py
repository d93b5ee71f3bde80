"""Read YAML into plain data while remembering where every key and value came from.

PyYAML's composer gives nodes with marks; we turn them into dicts/lists/scalars and a map from
key path to (file, line, column), so that every later check can point at the exact spot.
The resolver follows YAML 1.2's core schema: only `true`/`false` are booleans (a node named
`no` stays a string) and `1:30` stays a string (our duration parser reads it as a clock time).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from drills.errors import Problem
from drills.scenario import userfile, yamlcompose
from drills.scenario.yamlcompose import redact, token

KeyPath = tuple[str | int, ...]


class Mark(NamedTuple):
    """A position in a file, 1-based (a tuple: there is one for every value of a file)."""

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


_STR_TAG = "tag:yaml.org,2002:str"


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


def load_located(text: str, file: str, *, foreign: bool = False) -> Located:
    """Parse one YAML document from `text`; raises YamlError with positions on bad input.

    Within the bounds of `yamlcompose` (values with aliases expanded, nesting depth). With
    `foreign` (an included file, which may not be ours at all) no message quotes the file."""
    located = Located(data=None)
    problems: list[Problem] = []
    with no_cyclic_gc():
        try:
            node = yamlcompose.compose(text, _Core12Loader, foreign=foreign)
        except yamlcompose.ComposeError as exc:
            raise YamlError([Problem(file, exc.line, exc.column, "", exc.message)]) from None
        if node is None:
            return located
        constructor = _Core12Loader("")
        located.data = _Converter(file, located, constructor, problems, foreign).convert(node, ())
        constructor.dispose()
    if problems:
        raise YamlError(problems)
    return located


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Without the cyclic garbage collector: a file makes up to hundreds of thousands of objects,
    none of them garbage, and each full collection would walk them all again (it made reading a
    10,000-link scenario three times slower, and loading it 1.7 times). Reference counting still
    frees everything; the objects made are bounded by the reader's bounds."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    """Nodes to plain data, recording positions; the composer bounded what this walk produces."""

    def __init__(
        self, file: str, located: Located, constructor: yaml.SafeLoader, problems: list[Problem], foreign: bool
    ) -> None:
        self.file = file
        self.located = located
        self.constructor = constructor
        self.problems = problems
        self.foreign = foreign

    def problem(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.file, *_lc(node), _path_text(path), message))

    def convert(self, node: yaml.Node, path: KeyPath) -> Any:
        self.located.values[path] = _mark(self.file, node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(child, (*path, index)) for index, child in enumerate(node.value)]
        if node.tag == _STR_TAG:  # most values: no need for the constructor's bookkeeping
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception as exc:  # a constructor of an explicit tag can fail any way
            # An explicit tag that does not fit the value (`!!int x`, `!!binary %`) or one we do
            # not construct (`!!python/object`).
            self.problem(node, path, f"cannot read this value {self.unreadable(node, exc)}")
            return None

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, path, "YAML merge keys (<<) are not supported; repeat the keys instead")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain string")
                continue
            try:
                key = key_node.value if key_node.tag == _STR_TAG else str(self.constructor.construct_object(key_node))
            except Exception as exc:  # a constructor of an explicit tag can fail any way
                self.problem(key_node, path, f"cannot read this key {self.unreadable(key_node, exc)}")
                continue
            if key in result:
                if self.foreign:  # the path would quote the key: say where, not what
                    self.problem(key_node, path, "duplicate key; a key may appear once in a mapping")
                else:
                    self.problem(
                        key_node, (*path, key), f"duplicate key {token(key)}; a key may appear once in a mapping"
                    )
                continue
            self.located.keys[(*path, key)] = _mark(self.file, key_node)
            result[key] = self.convert(value_node, (*path, key))
        return result

    def unreadable(self, node: yaml.Node, exc: Exception) -> str:
        return "(an explicit tag that does not fit)" if self.foreign else _unreadable(node, exc)


def _unreadable(node: yaml.Node, exc: Exception) -> str:
    """One line on why PyYAML could not construct a tagged scalar (its own messages span lines)."""
    tag = token(node.tag.replace("tag:yaml.org,2002:", "!!"), 60)[1:-1]
    detail = ""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        detail = redact(exc.problem)
    elif type(exc) is ValueError and "digits" in str(exc):  # int('1' * 5000)
        detail = "an integer with too many digits"
    elif type(exc) is ValueError and str(exc):
        detail = redact(str(exc).splitlines()[0])
    return f"as {tag}{f' ({detail})' if detail else ''}; remove the tag or quote the value"


def _lc(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def read_located(path: Path, *, foreign: bool = False, plain: bool = False) -> Located:
    """Read (within the bounds of `userfile`) and parse a file; a file we refuse to read is a
    YamlError too, at the line of the offending byte when there is one."""
    try:
        text = userfile.read_text(path)
    except userfile.FileRefused as exc:
        # A refusal of the whole file is at 1:1 (there is a file, the problem is all of it); a
        # missing file has no line at all.
        line, column = (exc.line, exc.column) if exc.line or exc.reason.startswith("file not found") else (1, 1)
        raise YamlError([Problem(str(path), line, column, "", exc.reason)]) from None
    if plain:
        return Located(load_plain(text, str(path)))
    return load_located(text, str(path), foreign=foreign)


def load_plain(text: str, file: str) -> Any:
    """Another tool's YAML text as plain data (see `read_plain`); YamlError on bad input."""
    with no_cyclic_gc():
        try:
            node = yamlcompose.compose(text, yaml.SafeLoader, foreign=True)
        except yamlcompose.ComposeError as exc:
            raise YamlError([Problem(file, exc.line, exc.column, "", exc.message)]) from None
        if node is None:
            return None
        try:
            return yaml.SafeLoader("").construct_document(node)
        except Exception as exc:  # a constructor of an explicit tag can fail any way
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = redact(getattr(exc, "problem", None) or "a value that cannot be read")
            raise YamlError([Problem(file, line, column, "", f"cannot read: {problem}")]) from None


def read_plain(path: Path) -> Any:
    """Another tool's YAML file (a containerlab lab, an image definition) as plain data, with
    PyYAML's safe semantics (YAML 1.1, merge keys) but within the bounds of `userfile` and
    `yamlcompose`; YamlError on a file we refuse or cannot read."""
    located = read_located(path, plain=True)
    return located.data
