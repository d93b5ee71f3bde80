"""Faults: the interface every fault implements, the registry, and the link faults.

A fault is built from a timeline step once every reference is resolved, and then only applies,
confirms, reverts and confirms again. Netlink handles are opened in every node's namespace
before the drill clock starts, so applying a fault costs a netlink request and a read-back, not
a process or a namespace switch. "Confirmed" means the kernel shows the new state on every
object the fault touches. New faults live in their own modules and `register` themselves;
the engine needs no change for them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drills.errors import BackendError
from drills.netns import kernel
from drills.netns.rtnl import RawLinks, RouteSpec
from drills.scenario.resolved import Interface, Link, Node, Route, Service, Topology

Log = Callable[[str], None]
CARRIER_TIMEOUT_S = 1.0
CARRIER_POLL_S = 0.0001


class Handles:
    """One rtnetlink handle per namespace, opened lazily and kept for the whole drill."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self._namespaces = namespaces  # node -> namespace
        self._open: dict[str, Any] = {}
        self._raw: dict[str, RawLinks] = {}
        self._indices: dict[tuple[str, str], int] = {}

    def of(self, node: str) -> Any:
        if node not in self._open:
            self._open[node] = kernel.open_netlink(self._namespaces[node])
        return self._open[node]

    def raw(self, node: str) -> RawLinks:
        """The struct-built rtnetlink socket of a node: link up/down on the clock."""
        if node not in self._raw:
            namespace = self._namespaces[node]
            self._raw[node] = RawLinks(kernel.run_in_namespace(namespace, RawLinks.new_socket))
        return self._raw[node]

    def index(self, node: str, ifname: str) -> int:
        """Interface index, looked up once: a lookup costs as much as the change itself."""
        key = (node, ifname)
        if key not in self._indices:
            self._indices[key] = kernel.link_index(self.of(node), ifname)
        return self._indices[key]

    def warm(self, topology: Topology) -> None:
        """Open every handle and look up every link interface before the clock starts."""
        for link in topology.links:
            for end in (link.a, link.b):
                self.index(end.node, end.name)
                self.raw(end.node)

    def forget(self, node: str) -> None:
        """Close a node's handles and drop its cached indices: its namespace was replaced (a
        restarted container gets a new one); the next use opens them in the new namespace."""
        if node in self._open:
            self._open.pop(node).close()
        if node in self._raw:
            self._raw.pop(node).close()
        for key in [k for k in self._indices if k[0] == node]:
            del self._indices[key]

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        for raw in self._raw.values():
            raw.close()
        self._open.clear()
        self._raw.clear()


def _no_services(node: str, name: str) -> int:
    raise BackendError(f"cannot start service {node}/{name}: this fault context has no service runner")


@dataclass
class FaultContext:
    """What a fault may use while the drill runs."""

    topology: Topology
    handles: Handles
    namespaces: dict[str, str]  # node -> namespace name
    log: Log
    rng: random.Random  # seeded from the scenario's seed: every random choice is replayable
    # The runner owns the services (it started them and journals every process); faults reach
    # them through these two. `start_service(node, service)` starts one again exactly as deploy
    # did (journaled, readiness check passed) and returns its pid; `service_processes(node,
    # name)` gives the (pid, start ticks) journaled for it, oldest first, dead or alive.
    start_service: Callable[[str, Service], int] = field(default=lambda node, service: _no_services(node, service.name))
    service_processes: Callable[[str, str], list[tuple[int, int | None]]] = field(default=lambda _node, _name: [])
    # Called with a node's name when a fault replaced its network namespace (a restarted
    # container gets a new one): the runner subscribes its probes, which open their sockets
    # of that node again in the new namespace before the fault's step reports done.
    namespace_listeners: list[Callable[[str], None]] = field(default_factory=list)
    # The run's directory: the control sockets of its userspace relays live there (root only).
    # None when no relay serves a link of this context (the kernel's links).
    run_dir: Path | None = None

    def namespace_replaced(self, node: str) -> None:
        """Announce that `node`'s namespace was replaced (its name now denotes a new one)."""
        for listener in self.namespace_listeners:
            listener(node)


class Fault(Protocol):
    """One change to the testbed, applied and reverted on the drill clock."""

    @property
    def reversible(self) -> bool:
        """False for one-shot steps (note, exec): nothing to undo."""

    def describe(self, reverted: bool = False) -> str:
        """One line for the log and the report."""

    def touches(self) -> list[str]:
        """Every object this fault changes, for `drill plan` (`node:iface link state`, ...)."""

    def apply(self, ctx: FaultContext) -> None:
        """Make the change and confirm the kernel shows it; BackendError if it does not."""

    def revert(self, ctx: FaultContext) -> None:
        """Undo the change and confirm the kernel shows the original state."""


Builder = Callable[[Topology, Any], Fault]
_BUILDERS: dict[str, Builder] = {}


def register(kind: str) -> Callable[[Builder], Builder]:
    """Decorator: `@register("link-down")` on a function or class building a Fault from a step."""

    def add(builder: Builder) -> Builder:
        _BUILDERS[kind] = builder
        return builder

    return add


def supported_kinds() -> tuple[str, ...]:
    _load_fault_modules()
    return tuple(sorted(_BUILDERS))


def build(topology: Topology, step: Any) -> Fault:
    """The fault for a timeline step (whose references were checked by the loader)."""
    _load_fault_modules()
    return _BUILDERS[step.fault](topology, step)


def _load_fault_modules() -> None:
    # Importing a fault module registers its faults; listed here so there is one place to add one.
    from drills.engine import degrade, filter_faults, node_faults, steps  # noqa: F401


# --------------------------------------------------------------------------- link faults


def find_link(topology: Topology, ref: str) -> Link:
    return topology.link(ref)  # an index: a scan per step made validation quadratic


@dataclass(frozen=True)
class LinkDown:
    """Carrier loss on a link: both ends administratively down (a fibre cut), or one end.

    Used by `link-down` and, for each of its down periods, by `link-flap`."""

    topology: Topology
    link: Link
    ends: tuple[Interface, ...]
    reversible: bool = True

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> LinkDown:
        link = find_link(topology, step.link)
        end_ref = getattr(step, "end", None)
        if end_ref is None:
            return cls(topology, link, (link.a, link.b))
        end = link.a if end_ref == link.a.endpoint else link.b
        return cls(topology, link, (end,))

    def describe(self, reverted: bool = False) -> str:
        return f"link {self.link.name}: {', '.join(e.endpoint for e in self.ends)} {'up again' if reverted else 'down'}"

    def touches(self) -> list[str]:
        downed = [f"{e.endpoint} admin state (down, then up; its static routes re-installed)" for e in self.ends]
        peers = [f"{e.endpoint} carrier (lost)" for e in (self.link.a, self.link.b) if e not in self.ends]
        return downed + peers

    def apply(self, ctx: FaultContext) -> None:
        handles = ctx.handles
        for end in self.ends:
            handles.raw(end.node).set_link(handles.index(end.node, end.name), up=False)
        self._confirm(handles, down=True)

    def revert(self, ctx: FaultContext) -> None:
        handles = ctx.handles
        for end in self.ends:
            handles.raw(end.node).set_link(handles.index(end.node, end.name), up=True)
        self._confirm(handles, down=False)
        # Setting an interface down made the kernel drop the static routes through it; a
        # router's configuration brings them back with the interface. Only those: a route
        # through another interface is still there, or that interface is down too (another
        # fault holds it) and its own revert re-installs it.
        for end in self.ends:
            raw = handles.raw(end.node)
            for route in routes_through(self.topology.node(end.node), end):
                raw.replace_route(
                    RouteSpec(
                        route.destination, route.gateway, handles.index(end.node, end.name), route.metric, route.source
                    )
                )

    def _confirm(self, handles: Handles, *, down: bool) -> None:
        # A veth shows the new state at once. A userspace link's carrier is set by its relay when
        # it sees the far end change (drills.userspace): poll for it, within a bound.
        deadline = time.monotonic() + CARRIER_TIMEOUT_S
        for end in (self.link.a, self.link.b):
            while True:
                admin_up, carrier = handles.raw(end.node).link_state(handles.index(end.node, end.name))
                wrong = carrier if down else not (admin_up and carrier)
                if not wrong:
                    break
                if time.monotonic() > deadline:
                    if down:
                        raise BackendError(f"{end.endpoint} still has carrier after link-down; the fault did not take effect")
                    raise BackendError(f"{end.endpoint} is not up with carrier after reverting link-down")
                time.sleep(CARRIER_POLL_S)


def routes_through(node: Node, end: Interface) -> list[Route]:
    """The static routes of `node` whose next hop is out of interface `end`: named with
    `dev`, or with a gateway on one of its subnets."""
    subnets = [a.network for a in (end.ipv4, end.ipv6) if a is not None]
    return [
        route
        for route in node.routes
        if route.device == end.name
        or (route.device is None and route.gateway is not None and any(route.gateway in net for net in subnets))
    ]


register("link-down")(LinkDown.from_step)
register("link-flap")(LinkDown.from_step)  # the timeline expands a flap into down/up periods
