"""The run journal, and what an entry of it may say: checked on every read, never trusted.

Teardown and `drill clean` run as root and act on what a journal names: namespaces to unmount,
processes to kill, containers to remove. A journal is a file on disk that a crash may tear and
that anyone with write access to the state directory could plant, so every entry is checked
against the schema of its kind before anything acts on it. An entry that does not match is
*refused*: reported (line and reason) and never acted on.

What an entry may name:
- namespaces only as `drill-RUN-NODE` under /run/netns, RUN being this run's own id (so never
  /proc/..., never the host's namespace, never another run's or a foreign `ip netns` one); and,
  only as a namespace to create and remove, as a veth end, or as the far end of a relay whose
  other end is a node's (and that relay's process), never where a service or container is named,
  the run's wire namespace of a host, `drill-RUN-_HOST`, which holds the VXLAN ends of links to
  other hosts (drills.netns.wire; no node name begins with `_`), or a LAN segment's bridge
  namespace, `drill-RUN-_seg.NAME` (drills.netns.segments), which the same rule admits;
- processes only with the start time (clock ticks since boot, /proc/PID/stat field 22)
  recorded when they were created, never pid 1 or below;
- containers only under this run's naming (and teardown removes one only when it carries the
  run's label, see drills.docker.backend);
- interfaces only with names Linux accepts and drills' scenarios can give.

Ownership markers (`created`, `not-created`): an object is journaled (intent) before it is
created, so a crash in between leaves no untracked object. Once the create succeeded, a
`created` marker names it; when the create failed because the name was taken, a `not-created`
marker names it and teardown leaves that object alone: it existed before the run. An intent
with neither marker (a crash between the two) is treated as "maybe ours", which is safe only
because every name a teardown acts on carries this run's unique id (checked here).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills.errors import NameExists

FILE_MODE = 0o600  # journal, meta and lock: readable by root only

# Node names as the scenario format allows them (drills.scenario.model.Name).
_NODE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}"
# Host names a wire namespace may carry (an inventory's hostnames, IPv4 addresses included).
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
VNI_MAX = 2**24 - 1  # VXLAN network identifiers are 24 bits
# Linux refuses "/", whitespace and ":" in interface names; drills also refuses quotes, "%"
# and control characters (they break nft scripts and terminals); 15 bytes at most (IFNAMSIZ-1).
_IFNAME = re.compile(r"[^\s/:%'\"\\\x00-\x1f\x7f]{1,15}")
# Objects whose existence teardown decides on: ownership markers name only these kinds.
MARKED_KINDS = ("netns", "netns-attach")
MAX_LINE_BYTES = 64 * 1024  # a journal line is a few hundred bytes; more is not ours
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
SHOWN_CHARS = 120  # how much of a refused entry a report quotes


@dataclass(frozen=True)
class Refused:
    """A journal entry that was not acted on, and why."""

    line: int  # 1-based line of journal.jsonl
    why: str
    entry: str  # the entry as read, shortened and with control characters escaped

    def __str__(self) -> str:
        return f"journal line {self.line} refused ({self.why}): {self.entry}"


@dataclass
class Checked:
    """A journal as read: the entries that passed their schema, in order, and those refused."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def not_created(self, kind: str) -> set[str]:
        """Names of `kind` whose create failed because the name existed: not ours."""
        return {name for e in self.entries if e["op"] == "not-created" and e["kind"] == kind for name in e["names"]}


def shown(text: str) -> str:
    """`text` safe to print in one line: control characters escaped, at most SHOWN_CHARS."""
    escaped = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return escaped if len(escaped) <= SHOWN_CHARS else escaped[: SHOWN_CHARS - 3] + "..."


class Journal:
    """Append-only JSON lines; `record` returns only once the entries are on disk."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    def record(self, entries: Iterable[dict[str, Any]], *, sync: bool = True) -> None:
        """Append entries. `sync=False` skips the fsync (~1 ms): the entry survives the death of
        this process, only not a crash of the machine, which takes namespaces with it anyway.
        Used for markers written on the drill clock, whose intent was already synced."""
        data = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)
        if not data:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, FILE_MODE)
        try:
            os.write(fd, data.encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def creating(self, kind: str, names: Sequence[str]) -> Iterator[None]:
        """Around the creation, in order, of objects of `kind` whose intent is journaled: marks
        them created when the block succeeds; when it raises NameExists for one of them, marks
        those before it created and it and those after it not created (a batch stops at its
        first failure). Any other error leaves intents alone: "maybe ours"."""
        try:
            yield
        except NameExists as exc:
            first = names.index(exc.name) if exc.name in names else len(names)
            self.mark(kind, names[:first], names[first:])
            raise
        self.mark(kind, names)

    def mark(self, kind: str, created: Sequence[str], not_created: Sequence[str] = ()) -> None:
        """Ownership markers for objects of `kind` whose intent was journaled (see the module
        docstring). Not synced: a lost marker leaves an intent, which teardown still handles."""
        markers: list[dict[str, Any]] = [{"op": "created", "kind": kind, "names": list(created)}] if created else []
        if not_created:
            markers.append({"op": "not-created", "kind": kind, "names": list(not_created)})
        self.record(markers, sync=False)

    def checked(self) -> Checked:
        """Every complete entry, checked: a line torn by a crash mid-write is skipped silently
        (only the last line can be torn); any other bad line is refused."""
        result = Checked()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return result
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_JOURNAL_BYTES:
                # Far beyond what a run writes (a 200-node ring: ~100 KiB): not read, not acted on.
                result.refused.append(Refused(0, "journal larger than 64 MiB: not read", str(self.path)))
                return result
            lines = handle.read().split(b"\n")
        last = len(lines) - 1 if lines and lines[-1] else len(lines) - 2
        namespaces = _journal_pattern(self.run_id)
        for number, raw in enumerate(lines, start=1):
            if not raw:
                continue
            try:
                entry = json.loads(raw) if len(raw) <= MAX_LINE_BYTES else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                if number - 1 == last:
                    continue  # torn by a crash mid-write: it was never acted on either
                entry = None
            why = "not a JSON object of at most 64 KiB" if not isinstance(entry, dict) else check(entry, namespaces)
            if why is None:
                assert isinstance(entry, dict)
                result.entries.append(entry)
            else:
                result.refused.append(Refused(number, why, shown(raw.decode(errors="replace"))))
        return result

    def entries(self) -> list[dict[str, Any]]:
        """The entries that passed their schema (see `checked` for those refused)."""
        return self.checked().entries


# --------------------------------------------------------------------------- schemas


def namespace_pattern(run_id: str) -> re.Pattern[str]:
    """Names of the namespaces run `run_id` may create or bind: drill-RUN-NODE."""
    return re.compile(rf"drill-{re.escape(run_id)}-(?P<node>{_NODE})")


def _journal_pattern(run_id: str) -> re.Pattern[str]:
    """`namespace_pattern`, or a wire namespace drill-RUN-_HOST (group `wire`): what the journal
    accepts, each check then saying whether a wire namespace may stand where it is."""
    return re.compile(rf"drill-{re.escape(run_id)}-(?:(?P<node>{_NODE})|_(?P<wire>{HOST_NAME.pattern}))")


def _str(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable()


def check(entry: dict[str, Any], namespaces: re.Pattern[str]) -> str | None:
    """Why `entry` may not be acted on for the run whose namespaces match `namespaces`
    (`_journal_pattern`: a node's, or a wire namespace where the entry's kind allows one), or
    None when it matches its schema."""
    op = entry.get("op")
    checker = _CHECKS.get(op) if isinstance(op, str) else None
    if checker is None:
        return f"unknown kind {shown(str(op))!r}"
    return checker(entry, namespaces)


def _namespace(name: Any, ns: re.Pattern[str], *, wire: bool = False) -> str | None:
    """Why `name` is not a namespace of this run's that may stand here (None when it is): a
    node's, or, where `wire`, also a wire namespace."""
    match = ns.fullmatch(name) if isinstance(name, str) else None
    if match is None or (match["wire"] is not None and not wire):
        return f"namespace {shown(str(name))!r} is not one of this run's (drill-RUN-NODE under /run/netns)"
    return None


def _check_netns(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    return _namespace(entry.get("name"), ns, wire=True)


def _check_netns_attach(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    return _namespace(entry.get("name"), ns)


def _check_container(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    name = entry.get("name")
    match = ns.fullmatch(name) if isinstance(name, str) else None  # named as its node's namespace
    if match is None or match["node"] != entry.get("node"):
        return f"container {shown(str(name))!r} is not named drill-RUN-NODE after its node, RUN being this run"
    return None


def _end(value: Any, ns: re.Pattern[str]) -> str | None:
    if not (isinstance(value, list) and len(value) == 2):
        return "a veth end is [namespace, interface]"
    if not _ifname(value[1]):
        return f"interface name {shown(str(value[1]))!r} is not valid"
    return _namespace(value[0], ns, wire=True)


def _ifname(value: Any) -> bool:
    return isinstance(value, str) and bool(_IFNAME.fullmatch(value)) and value not in (".", "..")


def _check_veth(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    return _end(entry.get("a"), ns) or _end(entry.get("b"), ns)


def _check_vxlan(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    # A record of what the wire namespace holds; teardown removes it with that namespace.
    vni, port = entry.get("vni"), entry.get("port")
    if not (_str(entry.get("link")) and _ifname(entry.get("name"))):
        return "a vxlan entry names its link and a valid interface"
    if not (isinstance(vni, int) and not isinstance(vni, bool) and 0 < vni <= VNI_MAX):
        return f"VNI {shown(str(vni))} is not 1 to {VNI_MAX}"
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        return f"UDP port {shown(str(port))} is not 1 to 65535"
    match = ns.fullmatch(entry["ns"]) if isinstance(entry.get("ns"), str) else None
    if match is None or match["wire"] is None:
        return f"namespace {shown(str(entry.get('ns')))!r} is not a wire namespace of this run (drill-RUN-_HOST)"
    return None


def _check_service(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    if not (_str(entry.get("node")) and _str(entry.get("name"))):
        return "a service entry names its node and service"
    return _namespace(entry.get("ns"), ns)


def _check_process(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    pid, start = entry.get("pid"), entry.get("start")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 1 < pid < 2**22:
        return f"pid {shown(str(pid))} is not a process drills starts"
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        return f"pid {pid} has no start time: it cannot be told from a reused pid"
    if not (_str(entry.get("service")) or _str(entry.get("relay"))):
        return "a process entry names its service or relay"
    # A relay's process is journaled with its first end's namespace: a wire one on a cross link.
    return _namespace(entry.get("ns"), ns, wire=not _str(entry.get("service")))


def _check_relay(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    # Only the link and its namespaces are checked: the relay itself is found by its label,
    # and its other fields (control socket, seed) are the relay's business.
    ends = entry.get("ns")
    if not _str(entry.get("link")) or not (isinstance(ends, list) and len(ends) == 2):
        return "a relay entry names its link and both namespaces"
    # A cross-host link's relay joins a node's TAP to one in the wire namespace: one end may be
    # a wire namespace, never both (a relay always serves a node).
    return (
        _namespace(ends[0], ns, wire=True)
        or _namespace(ends[1], ns, wire=True)
        or (_namespace(ends[0], ns, wire=False) and _namespace(ends[1], ns, wire=False))
    )


def _check_fault(entry: dict[str, Any], _ns: re.Pattern[str]) -> str | None:
    touches = entry.get("touches")
    if not (_str(entry.get("step")) and _str(entry.get("fault")) and isinstance(touches, list)):
        return "a fault entry names its step, its fault and what it touches"
    return None


def _check_fault_marker(entry: dict[str, Any], _ns: re.Pattern[str]) -> str | None:
    at_s = entry.get("at_s")
    if not _str(entry.get("step")) or not isinstance(at_s, (int, float)) or isinstance(at_s, bool):
        return "a fault marker names its step and time"
    return None


def _check_marker(entry: dict[str, Any], ns: re.Pattern[str]) -> str | None:
    names = entry.get("names")
    if entry.get("kind") not in MARKED_KINDS or not isinstance(names, list):
        return f"a marker names a kind ({', '.join(MARKED_KINDS)}) and a list of names"
    for name in names:
        why = _namespace(name, ns, wire=entry["kind"] == "netns")
        if why:
            return why
    return None


def _check_host(entry: dict[str, Any], _ns: re.Pattern[str]) -> str | None:
    """A host holding part of a run spread over several (drills.remote.backend): its inventory
    name, the run id its agent keeps the part under, and the inventory that reaches it."""
    run = entry.get("run")
    if not _str(entry.get("name")) or not isinstance(run, str) or not re.fullmatch(r"[0-9a-f]{6}", run):
        return "a host entry names an inventory host and a run id of six hex digits"
    if not _str(entry.get("inventory")):
        return "a host entry names the inventory that reaches the host"
    return None


_CHECKS: dict[str, Callable[[dict[str, Any], re.Pattern[str]], str | None]] = {
    "netns": _check_netns,
    "netns-attach": _check_netns_attach,
    "container": _check_container,
    "veth": _check_veth,
    "vxlan": _check_vxlan,
    "service": _check_service,
    "process": _check_process,
    "relay": _check_relay,
    "fault": _check_fault,
    "fault-apply": _check_fault_marker,
    "fault-revert": _check_fault_marker,
    "created": _check_marker,
    "not-created": _check_marker,
    "host": _check_host,
}
