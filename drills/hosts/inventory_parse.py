"""Read an Ansible inventory file (INI or YAML) into raw groups and hosts, as Ansible's `ini` and
`yaml` inventory plugins do, within bounds. Variables are merged by drills.hosts.inventory.

Only the static formats are read: an executable file (a dynamic inventory script) or a YAML
file naming an inventory `plugin:` is refused by the caller before this module sees it, because
Ansible would run it, and drills runs as root.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
import warnings
from dataclasses import dataclass, field
from typing import Any

from drills.errors import Problem
from drills.scenario.yamlcompose import token
from drills.scenario.yamlpos import Located

MAX_LINE_CHARS = 4096  # an INI line: a host with its variables, never a file
MAX_HOSTS = 1024  # hosts of one inventory, ranges expanded (a drill spans a few machines)
MAX_GROUPS = 1024
MAX_GROUP_DEPTH = 16  # children of children...: real inventories nest 3 or 4 levels
MAX_VARS = 4096  # variable assignments in the whole file

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_LINE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
# drills names hosts in journals and messages: letters, digits, '.', '-', '_' only. An address
# that is not such a name goes in `ansible_host`.
HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_RANGE = re.compile(r"\[([^\[\]]*)\]")


class ParseFailed(Exception):
    """Raised with the problems found (the file cannot be read further)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Scope:
    """Variables set on a group or a host, each with the line that set it (last one wins)."""

    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # set from another file (group_vars/...)

    def set(self, key: str, value: Any, line: int, file: str = "") -> None:
        self.values[key] = value
        self.lines[key] = line
        if file:
            self.files[key] = file
        else:
            self.files.pop(key, None)

    def update(self, other: Scope, *, skip: str = "") -> None:
        """`other`'s variables over these (Ansible's default `replace` merge)."""
        for key, value in other.values.items():
            if key != skip:
                self.set(key, value, other.lines[key], other.files.get(key, ""))


@dataclass
class RawGroup:
    name: str
    line: int
    vars: Scope = field(default_factory=Scope)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


@dataclass
class RawInventory:
    """What a file declares, in file order, before variables are inherited."""

    file: str
    groups: dict[str, RawGroup] = field(default_factory=dict)
    hosts: dict[str, Scope] = field(default_factory=dict)
    host_lines: dict[str, int] = field(default_factory=dict)
    assignments: int = 0

    def fail(self, line: int, message: str) -> ParseFailed:
        return ParseFailed([Problem(self.file, line, 1 if line else 0, "", message)])

    def group(self, name: str, line: int) -> RawGroup:
        if name not in self.groups:
            if "/" in name or name in (".", ".."):
                # It would name a path under group_vars/ (Ansible would read it there).
                raise self.fail(line, f"group name {token(name)}: no '/', and not '.' or '..'")
            if len(self.groups) >= MAX_GROUPS:
                raise self.fail(line, f"more than {MAX_GROUPS} groups; drills reads inventories of a few machines")
            self.groups[name] = RawGroup(name, line)
        return self.groups[name]

    def add_host(self, group: str, name: str, line: int, port: int | None) -> Scope:
        if not HOST_NAME.fullmatch(name):
            raise self.fail(
                line,
                f"host name {token(name)} is not one drills can use: letters, digits, '.', '-', '_' "
                "(put an address in `ansible_host=`)",
            )
        if name not in self.hosts:
            if len(self.hosts) >= MAX_HOSTS:
                raise self.fail(line, f"more than {MAX_HOSTS} hosts (ranges expanded); split the inventory")
            self.hosts[name] = Scope()
            self.host_lines[name] = line
        target = self.group(group, line)
        if name not in target.hosts:
            target.hosts.append(name)
        scope = self.hosts[name]
        if port is not None:
            scope.set("ansible_port", port, line)
        return scope

    def count(self, line: int) -> None:
        self.assignments += 1
        if self.assignments > MAX_VARS:
            raise self.fail(line, f"more than {MAX_VARS} variable assignments; drills reads small static inventories")


# --------------------------------------------------------------------------- host patterns


def expand_pattern(raw: RawInventory, pattern: str, line: int) -> tuple[list[str], int | None]:
    """`web[01:03].example:2222` -> the host names and the port, as Ansible expands them, refusing
    a pattern that would expand past the host bound before expanding it."""
    port: int | None = None
    head, sep, tail = pattern.rpartition(":")
    if sep and tail.isdigit() and ":" not in _RANGE.sub("", head):
        pattern, port = head, int(tail)
        if not 1 <= port <= 65535:
            raise raw.fail(line, f"port {port} of {token(pattern)} is not a TCP port (1 to 65535)")
    elif pattern.endswith(":"):
        raise raw.fail(line, f"host {token(pattern)} ends in ':' without a port; write name:PORT or drop the ':'")
    names = [pattern]
    while names and "[" in names[0]:
        expanded: list[str] = []
        for name in names:
            expanded.extend(_expand_first(raw, name, line, MAX_HOSTS - len(raw.hosts) - len(expanded)))
        names = expanded
    return names, port


def _expand_first(raw: RawInventory, name: str, line: int, room: int) -> list[str]:
    match = _RANGE.search(name)
    if match is None or "]" not in name[match.start() :]:
        raise raw.fail(line, f"host pattern {token(name)}: unbalanced '['; a range is written [1:3] or [a:c]")
    head, tail = name[: match.start()], name[match.end() :]
    bounds = match.group(1).split(":")
    what = "host range must be [begin:end] or [begin:end:step], such as web[1:3]"
    if len(bounds) not in (2, 3) or not bounds[1]:
        raise raw.fail(line, f"{token(name)}: {what}")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not step_text.isdigit() or int(step_text) < 1:
        raise raw.fail(line, f"{token(name)}: the step of a host range is a positive whole number")
    step = int(step_text)
    letters = string.ascii_letters
    if begin in letters and end in letters and len(begin) == len(end) == 1:
        first, last = letters.index(begin), letters.index(end)
        items = [letters[i] for i in range(first, last + 1, step)] if first <= last else []
    elif begin.isdigit() and end.isdigit() and len(begin) <= 9 and len(end) <= 9:
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and len(end) != width:
            raise raw.fail(line, f"{token(name)}: a zero-padded range needs begin and end of equal length")
        count = max(0, (int(end) - int(begin)) // step + 1)
        if count > room:
            raise raw.fail(line, f"{token(name)} expands to {count} hosts; an inventory holds at most {MAX_HOSTS}")
        items = [str(i).zfill(width) for i in range(int(begin), int(end) + 1, step)]
    else:
        raise raw.fail(line, f"{token(name)}: {what}")
    if not items:
        raise raw.fail(line, f"{token(name)}: the range is empty (its begin is after its end)")
    if len(items) > room:
        raise raw.fail(line, f"{token(name)} expands past the bound of {MAX_HOSTS} hosts")
    return [f"{head}{item}{tail}" for item in items]


# --------------------------------------------------------------------------- INI


def literal(text: str) -> Any:
    """A value of an INI inventory as Ansible reads it: a Python literal when it is one
    (`2222`, `True`, `[1, 2]`, `"two words"`), else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if value is ... or isinstance(value, complex | bytes | set | tuple):
        # Ansible keeps no such types: a tuple or set becomes a list, the rest text.
        return list(value) if isinstance(value, tuple | set) else text
    return value


def parse_ini(text: str, file: str) -> RawInventory:
    raw = RawInventory(file)
    for name in ("all", "ungrouped"):
        raw.group(name, 0)
    declared = {"all", "ungrouped"}
    pending: dict[str, tuple[int, str]] = {}  # group -> (line, how it was referred to)
    group, state = "ungrouped", "hosts"
    for number, full in enumerate(text.splitlines(), start=1):
        if len(full) > MAX_LINE_CHARS:
            raise raw.fail(number, f"a line of {len(full)} characters; an inventory line holds at most {MAX_LINE_CHARS}")
        line = full.strip()
        if not line or line[0] in "#;":
            continue
        section = _SECTION.match(line)
        if section:
            group, kind = section.group(1), section.group(2) or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise raw.fail(number, f"section [{group}:{kind}]: unknown kind {token(kind)}; use :vars or :children")
            raw.group(group, number)
            if kind != "vars":
                declared.add(group)
                pending.pop(group, None)
            elif group not in declared:
                pending.setdefault(group, (number, f"[{group}:vars] is for a group declared nowhere"))
            state = kind
            continue
        if line.startswith("["):
            hint = " (this looks like YAML: name the file .yml)" if line.endswith(":") else ""
            raise raw.fail(number, f"not a section header: write [group], [group:vars] or [group:children], no spaces{hint}")
        if state == "hosts":
            _ini_hosts(raw, group, line, number)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise raw.fail(number, f"in [{group}:vars] each line is key=value")
            raw.count(number)
            raw.group(group, number).vars.set(key.strip(), literal(value.strip()), number)
        else:
            child = _GROUP_LINE.match(line)
            if child is None:
                raise raw.fail(number, f"in [{group}:children] each line is one group name")
            name = child.group(1)
            if name == group:
                raise raw.fail(number, f"group {token(name)} cannot be its own child")
            parent = raw.group(group, number)
            if name not in parent.children:
                parent.children.append(name)
            if name not in declared:
                pending.setdefault(name, (number, f"[{group}:children] names group {token(name)}, declared nowhere"))
    for _name, (number, message) in pending.items():
        raise raw.fail(number, f"{message}; declare it with a [{_name}] section")
    return raw


def _ini_hosts(raw: RawInventory, group: str, line: str, number: int) -> None:
    if line.rstrip(":") in ("---", "all", "plugin") or line.startswith(("all:", "plugin:")):
        raise raw.fail(number, "this looks like YAML, read here as INI: name the file .yml or .yaml")
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise raw.fail(number, f"cannot split this host line ({exc}); check its quotes") from None
    if not tokens:
        return
    names, port = expand_pattern(raw, tokens[0], number)
    assigned: list[tuple[str, Any]] = []
    for item in tokens[1:]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise raw.fail(number, f"expected key=value after the host name, got {token(item)}")
        raw.count(number)
        assigned.append((key, literal(value)))
    for name in names:
        scope = raw.add_host(group, name, number, port)
        for key, value in assigned:
            scope.set(key, value, number)


# --------------------------------------------------------------------------- YAML


def parse_yaml(data: Any, located: Located, file: str) -> RawInventory:
    """Ansible's YAML inventory: top-level keys are groups (`all` first, usually), each a mapping
    of `hosts:`, `vars:` and `children:`. `data` is the file as Ansible reads it (YAML 1.1);
    `located` the same file with positions."""
    raw = RawInventory(file)
    raw.group("all", 0)
    raw.group("ungrouped", 0)
    if not isinstance(data, dict):
        raise raw.fail(1, "a YAML inventory is a mapping of groups, starting with `all:`")
    for name, body in data.items():
        _yaml_group(raw, located, str(name), body, (str(name),), 1)
    return raw


def _line(located: Located, path: tuple[str, ...], *, key: bool = True) -> int:
    mark = located.mark(path, key=key)
    return mark.line if mark else 0


def _yaml_group(raw: RawInventory, located: Located, name: str, body: Any, path: tuple[str, ...], depth: int) -> None:
    line = _line(located, path)
    if depth > MAX_GROUP_DEPTH:
        raise raw.fail(line, f"groups nested more than {MAX_GROUP_DEPTH} deep under `children:`")
    if not re.fullmatch(r"[^:\]\s]+", name):
        raise raw.fail(line, f"group name {token(name)}: no spaces, ':' or ']'")
    group = raw.group(name, line)
    if body is None:
        return
    if not isinstance(body, dict):
        raise raw.fail(line, f"group {token(name)} holds a mapping of `hosts:`, `vars:` and `children:`")
    for key, value in body.items():
        kpath = (*path, str(key))
        kline = _line(located, kpath)
        if key not in ("hosts", "vars", "children"):
            raise raw.fail(kline, f"unknown key {token(str(key))} in group {token(name)}; use hosts, vars or children")
        if isinstance(value, str) and key != "vars":
            value = {value: None}  # Ansible accepts `hosts: web1`
        if value is None:
            continue
        if not isinstance(value, dict):
            raise raw.fail(kline, f"`{key}:` of group {token(name)} holds a mapping")
        if key == "vars":
            for var, setting in value.items():
                raw.count(kline)
                group.vars.set(str(var), setting, _line(located, (*kpath, str(var))))
        elif key == "children":
            for child, child_body in value.items():
                child_name = str(child)
                if child_name == name:
                    raise raw.fail(_line(located, (*kpath, child_name)), f"group {token(name)} cannot be its own child")
                _yaml_group(raw, located, child_name, child_body, (*kpath, child_name), depth + 1)
                if child_name not in group.children:
                    group.children.append(child_name)
        else:
            for pattern, host_vars in value.items():
                hline = _line(located, (*kpath, str(pattern)))
                if not isinstance(pattern, str):
                    raise raw.fail(hline, f"host {token(str(pattern))}: quote a host name that YAML reads as a number")
                if host_vars is not None and not isinstance(host_vars, dict):
                    raise raw.fail(hline, f"host {token(pattern)} holds a mapping of variables (or nothing)")
                names, port = expand_pattern(raw, pattern, hline)
                for host in names:
                    scope = raw.add_host(name, host, hline, port)
                    for var, setting in (host_vars or {}).items():
                        raw.count(hline)
                        scope.set(str(var), setting, _line(located, (*kpath, str(pattern), str(var))))
