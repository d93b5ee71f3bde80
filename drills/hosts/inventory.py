"""`load_inventory`: an ordinary Ansible inventory file (INI or YAML) as drills' `Inventory`.

Variables are inherited as Ansible does: `all`, then every group of the host from the least to
the most deeply nested (ties by `ansible_group_priority`, then name), then the host's own. What
drills needs of each host (address, port, user, key, become, underlay) is read from them and
checked here, so a bad value is reported at the line that set it, before anything connects.

drills runs as root and hands the inventory to Ansible later, so a file Ansible would *run* is
refused: an executable file (a dynamic inventory script) and a YAML inventory plugin
configuration (`plugin:`). `group_vars/` and `host_vars/` beside the file are read as Ansible
reads them (drills.hosts.inventory_vars), with Ansible's precedence.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import stat
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from drills.errors import Problem, ScenarioError
from drills.hosts.inventory_parse import (
    MAX_GROUP_DEPTH,
    ParseFailed,
    RawInventory,
    Scope,
    parse_ini,
    parse_yaml,
)
from drills.hosts.inventory_vars import VarsDirs
from drills.hosts.records import AGENT_VENV, UNDERLAY_MTU, Host, Inventory
from drills.scenario import userfile
from drills.scenario.yamlcompose import token
from drills.scenario.yamlpos import YamlError, load_located, load_plain

MAX_INVENTORY_BYTES = 1024 * 1024  # an inventory of a thousand hosts with their variables is ~100 kB
YAML_SUFFIXES = (".yml", ".yaml", ".json")  # what Ansible's yaml plugin reads; anything else is INI
MIN_UNDERLAY_MTU = 1280  # the smallest IPv6 link MTU; below it the tunnels' MTU is useless
MAX_WEIGHT = 1000.0

_TRUE = {"y", "yes", "on", "1", "true", "t"}
_FALSE = {"n", "no", "off", "0", "false", "f", ""}


class InventoryError(ScenarioError):
    """An inventory file has problems: each located (file, line) with what to do. Exit code 2."""


def load_inventory(path: Path) -> Inventory:
    """Read, check and interpret the inventory at `path`; InventoryError on anything wrong."""
    path = Path(path)
    raw = _read(path)
    try:
        return _interpret(raw, path)
    except ParseFailed as exc:
        raise InventoryError(exc.problems) from None


def var_text(value: Any) -> str:
    """A variable's value as text, the same for an INI and a YAML inventory and for
    `ansible-inventory --list`: text as is, booleans `true`/`false`, numbers as written,
    nothing as "", lists and mappings as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


# --------------------------------------------------------------------------- reading


def _refuse(path: Path, message: str, line: int = 1) -> InventoryError:
    return InventoryError([Problem(str(path), line, 1 if line else 0, "", message)])


def _read(path: Path) -> RawInventory:
    try:
        info = os.stat(path)
    except OSError:
        info = None  # userfile says why, below
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "a directory: Ansible would read every file in it as an inventory; give one inventory file")
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
        raise _refuse(
            path,
            "the file is executable: Ansible would run it as a dynamic inventory script, and drills runs as root; "
            "give a static INI or YAML inventory, or `chmod a-x` it if it is one",
        )
    try:
        text = userfile.decode(userfile.read_bytes(path, MAX_INVENTORY_BYTES))
    except userfile.FileRefused as exc:
        reason = exc.reason.replace("give a scenario or topology file", "give an inventory file")
        reason = reason.replace("; the limit is ", "; the limit for an inventory is ")
        raise _refuse(path, reason, exc.line or (0 if reason.startswith("file not found") else 1)) from None
    try:
        if path.suffix.lower() in YAML_SUFFIXES:
            return _read_yaml(text, path)
        return parse_ini(text, str(path))
    except ParseFailed as exc:
        raise InventoryError(exc.problems) from None


def _read_yaml(text: str, path: Path) -> RawInventory:
    try:
        located = load_located(text, str(path), foreign=True)  # positions (and the bounds)
        data = load_plain(text, str(path))  # values as Ansible reads them: YAML 1.1
    except YamlError as exc:
        raise InventoryError(exc.problems) from None
    if isinstance(data, dict) and "plugin" in data:
        mark = located.mark(("plugin",), key=True)
        raise _refuse(
            path,
            "an inventory plugin configuration (`plugin:`): Ansible would run the plugin to find hosts, and "
            "drills runs as root; give a static inventory that lists the hosts",
            mark.line if mark else 1,
        )
    if data is None:
        raise _refuse(path, "the file is empty; a YAML inventory starts with `all:`")
    return parse_yaml(data, located, str(path))


# --------------------------------------------------------------------------- inheritance


def _depths(raw: RawInventory) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Each group's depth as Ansible counts it (all: 0, a top-level group: 1, a child: its
    deepest parent + 1) and each group's parents; a loop of children is refused."""
    parents: dict[str, list[str]] = {name: [] for name in raw.groups}
    for group in raw.groups.values():
        for child in group.children:
            parents[child].append(group.name)
    for name, above in parents.items():
        if name != "all" and not above:
            above.append("all")
    depth: dict[str, int] = {"all": 0}
    visiting: list[str] = []

    def walk(name: str) -> int:
        if name in depth:
            return depth[name]
        if name in visiting:
            loop = " -> ".join([*visiting[visiting.index(name) :], name])
            raise raw.fail(raw.groups[name].line, f"groups are children of each other in a loop: {loop}")
        if len(visiting) > MAX_GROUP_DEPTH:
            raise raw.fail(raw.groups[name].line, f"groups nested more than {MAX_GROUP_DEPTH} deep")
        visiting.append(name)
        found = max(walk(parent) + 1 for parent in parents[name])
        visiting.pop()
        depth[name] = found
        return found

    for name in raw.groups:
        walk(name)
    return depth, parents


def _priority(raw: RawInventory, name: str) -> int:
    value = raw.groups[name].vars.values.get("ansible_group_priority", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        line = raw.groups[name].vars.lines.get("ansible_group_priority", raw.groups[name].line)
        raise raw.fail(line, "ansible_group_priority is a whole number") from None


def _merged(raw: RawInventory, dirs: VarsDirs) -> dict[str, Scope]:
    """Every host's variables, inherited, each with the file and line that set it."""
    depth, parents = _depths(raw)
    direct: dict[str, list[str]] = {host: [] for host in raw.hosts}
    for group in raw.groups.values():
        for host in group.hosts:
            direct[host].append(group.name)
    merged: dict[str, Scope] = {}
    for host, own in raw.hosts.items():
        # As Ansible reconciles: a host in no group but `all` is in `ungrouped`, and only then.
        groups = {name for name in direct[host] if name not in ("all", "ungrouped")} or {"ungrouped"}
        todo = list(groups)
        while todo:
            for parent in parents[todo.pop()]:
                if parent not in groups:
                    groups.add(parent)
                    todo.append(parent)
        groups.add("all")
        # Ansible's order (its default VARIABLE_PRECEDENCE): the inventory file's `all`, then its
        # groups, then group_vars/all, then group_vars/ of the groups, then the host's own
        # variables in the file, then host_vars/.
        ordered = sorted(groups - {"all"}, key=lambda g: (depth[g], _priority(raw, g), g))
        scope = Scope()
        for name in ["all", *ordered]:
            scope.update(raw.groups[name].vars, skip="ansible_group_priority")  # a rank, not a variable
        for name in ["all", *ordered]:
            scope.update(dirs.scope("group_vars", name))
        scope.update(own)
        scope.update(dirs.scope("host_vars", host))
        merged[host] = scope
    return merged


# --------------------------------------------------------------------------- hosts


class _HostReader:
    """Reads drills' settings out of one host's variables; problems are collected, not raised."""

    def __init__(self, raw: RawInventory, name: str, scope: Scope, problems: list[Problem]) -> None:
        self.raw = raw
        self.name = name
        self.scope = scope
        self.problems = problems

    def problem(self, key: str, message: str) -> None:
        line = self.scope.lines.get(key, self.raw.host_lines[self.name])
        file = self.scope.files.get(key, self.raw.file)
        self.problems.append(Problem(file, line, 1, "", f"host {self.name}: {key}: {message}"))

    def text(self, *keys: str) -> str | None:
        """The first of `keys` that is set, as text (None when none is); a template is refused."""
        for key in keys:
            value = self.scope.values.get(key)
            if value is None:
                continue
            text = var_text(value)
            if "{{" in text or "{%" in text:
                self.problem(key, "a Jinja2 template; drills does not expand templates: write the value itself")
                return None
            if not text.isprintable():
                self.problem(key, "holds control characters; write plain text")
                return None
            return text
        return None

    def number(self, key: str, default: int, low: int, high: int) -> int:
        text = self.text(key)
        if text is None:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            self.problem(key, f"{token(text)} is not a whole number from {low} to {high}")
            return default
        return int(text)

    def flag(self, key: str) -> bool:
        text = self.text(key)
        if text is None or text.lower() in _FALSE:
            return False
        if text.lower() in _TRUE:
            return True
        self.problem(key, f"{token(text)} is not a boolean; write true or false")
        return False

    def words(self, key: str) -> tuple[str, ...]:
        text = self.text(key)
        try:
            return tuple(shlex.split(text)) if text else ()
        except ValueError as exc:
            self.problem(key, f"cannot split these arguments ({exc}); check the quotes")
            return ()

    def underlay(self, address: str) -> str:
        given = self.text("drills_underlay")
        if given is None:
            return address if _is_ip(address) else ""
        if not _is_ip(given):
            self.problem("drills_underlay", f"{token(given)} is not an IP address; the tunnels' source is an address")
            return ""
        return given

    def weight(self) -> None:
        text = self.text("drills_weight")
        if text is None:
            return
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= MAX_WEIGHT:
            self.problem("drills_weight", f"{token(text)} is not a number from 0 to {MAX_WEIGHT:g}")

    def host(self) -> Host:
        address = self.text("ansible_host", "ansible_ssh_host") or self.name
        venv = self.text("drills_venv") or AGENT_VENV
        if not venv.startswith("/"):
            self.problem("drills_venv", f"{token(venv)} is not an absolute path")
        self.weight()
        return Host(
            name=self.name,
            address=address,
            port=self.number("ansible_port", self.number("ansible_ssh_port", 22, 1, 65535), 1, 65535),
            user=self.text("ansible_user", "ansible_ssh_user"),
            key_file=self.text("ansible_ssh_private_key_file", "ansible_private_key_file"),
            ssh_args=self.words("ansible_ssh_common_args") + self.words("ansible_ssh_extra_args"),
            local=(self.text("ansible_connection") or "") == "local",
            become=self.flag("ansible_become"),
            underlay=self.underlay(address),
            underlay_mtu=self.number("drills_underlay_mtu", UNDERLAY_MTU, MIN_UNDERLAY_MTU, 65535),
            venv=venv,
            vars=_texts(self.scope.values),
        )


def _texts(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: var_text(value) for key, value in values.items()}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _interpret(raw: RawInventory, path: Path) -> Inventory:
    merged = _merged(raw, VarsDirs(path))
    if not merged:
        raise _refuse(path, "the inventory names no host; list the machines the drill may use")
    problems: list[Problem] = []
    hosts = tuple(_HostReader(raw, name, scope, problems).host() for name, scope in merged.items())
    if problems:
        raise InventoryError(problems)
    return Inventory(path, hosts)
