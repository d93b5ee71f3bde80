"""Variables in `group_vars/` and `host_vars/` beside an inventory file, as Ansible's default
vars plugin (host_group_vars) reads them: for a group or host NAME, the first of `NAME`,
`NAME.yml`, `NAME.yaml`, `NAME.json` that exists; when it is a directory, every file in it (and
its subdirectories) with one of those extensions or none, in name order, hidden files and
`~` backups skipped. Each file is a YAML mapping of variables; later files win.

Bounded like the inventory (files read, bytes, directory depth). A vars file that is a
symbolic link is refused: drills runs as root, and a link could make it read any file.
"""

from __future__ import annotations

import os
from pathlib import Path

from drills.errors import Problem
from drills.hosts.inventory_parse import ParseFailed, Scope
from drills.scenario import userfile
from drills.scenario.yamlpos import YamlError, load_located, load_plain

MAX_VARS_FILES = 256
MAX_VARS_FILE_BYTES = 1024 * 1024
MAX_VARS_TOTAL_BYTES = 4 * 1024 * 1024
MAX_VARS_DIR_DEPTH = 8
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def _fail(path: Path, message: str, line: int = 0) -> ParseFailed:
    return ParseFailed([Problem(str(path), line, 1 if line else 0, "", message)])


class VarsDirs:
    """The `group_vars/` and `host_vars/` of one inventory's directory, read on demand, once."""

    def __init__(self, inventory: Path) -> None:
        # Ansible looks beside the inventory's directory as given, links in it resolved.
        self.base = Path(os.path.realpath(os.path.dirname(os.path.abspath(inventory))))
        self.files_read = 0
        self.bytes_read = 0
        self.cache: dict[tuple[str, str], Scope] = {}

    def scope(self, kind: str, name: str) -> Scope:
        """The variables of group (`kind` "group_vars") or host ("host_vars") `name`."""
        key = (kind, name)
        if key not in self.cache:
            scope = Scope()
            top = self.base / kind
            if top.is_dir():
                for path in self._find(top, name):
                    self._load(path, scope)
            self.cache[key] = scope
        return self.cache[key]

    def _find(self, top: Path, name: str) -> list[Path]:
        for extension in VARS_EXTENSIONS:
            path = top / f"{name}{extension}"
            if path.is_symlink() or path.exists():
                return self._walk(path, 0) if path.is_dir() and not path.is_symlink() else [path]
        return []

    def _walk(self, directory: Path, depth: int) -> list[Path]:
        if depth >= MAX_VARS_DIR_DEPTH:
            raise _fail(directory, f"vars directories nested more than {MAX_VARS_DIR_DEPTH} deep")
        try:
            entries = sorted(os.listdir(directory))
        except OSError as exc:
            raise _fail(directory, f"cannot list this vars directory: {exc.strerror}") from None
        if len(entries) > MAX_VARS_FILES:
            raise _fail(directory, f"more than {MAX_VARS_FILES} entries in a vars directory")
        found: list[Path] = []
        for entry in entries:
            if entry.startswith(".") or entry.endswith("~"):
                continue
            path = directory / entry
            extension = os.path.splitext(entry)[1]
            if path.is_dir() and not path.is_symlink() and not extension:
                found.extend(self._walk(path, depth + 1))
            elif (path.is_file() or path.is_symlink()) and extension in VARS_EXTENSIONS:
                found.append(path)
        return found

    def _load(self, path: Path, scope: Scope) -> None:
        self.files_read += 1
        if self.files_read > MAX_VARS_FILES:
            raise _fail(path, f"more than {MAX_VARS_FILES} vars files in group_vars/ and host_vars/")
        if path.is_symlink():
            raise _fail(path, "a symbolic link: drills (root) reads vars files themselves; copy the file here", 1)
        try:
            data_bytes = userfile.read_bytes(path, MAX_VARS_FILE_BYTES)
            self.bytes_read += len(data_bytes)
            if self.bytes_read > MAX_VARS_TOTAL_BYTES:
                raise _fail(path, f"vars files of more than {MAX_VARS_TOTAL_BYTES:,} bytes in all", 1)
            text = userfile.decode(data_bytes)
        except userfile.FileRefused as exc:
            raise _fail(path, exc.reason.replace("a scenario or topology file", "a vars file"), exc.line or 1) from None
        try:
            located = load_located(text, str(path), foreign=True)  # positions, and the bounds
            data = load_plain(text, str(path))  # values as Ansible reads them (YAML 1.1)
        except YamlError as exc:
            raise ParseFailed(exc.problems) from None
        if data is None:
            return
        if not isinstance(data, dict):
            raise _fail(path, "a vars file holds a mapping of variables (name: value lines)", 1)
        for key, value in data.items():
            mark = located.mark((str(key),), key=True)
            scope.set(str(key), value, mark.line if mark else 1, str(path))
