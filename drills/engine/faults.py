"""Faults: the interface every fault implements, the registry, and the link faults.

A fault is built from a resolved timeline step (drills.scenario.steps) before the drill clock
starts, and then only applies, confirms, reverts and confirms again, through the node
operations of the seam (`drills.backend.NodeOps`): it never reaches a kernel, a container
engine or a process itself. "Confirmed" means the backend shows the new state on every object
the fault touches. New faults live in their own modules and `register` themselves; the engine
needs no change for them, and a new backend needs no change here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drills.backend import NodeOps
from drills.clock import Clock
from drills.errors import BackendError
from drills.scenario.resolved import Interface, Link, Route
from drills.scenario.steps import LinkDownStep, Step

Log = Callable[[str], None]
CARRIER_TIMEOUT_S = 1.0
CARRIER_POLL_S = 0.0001


@dataclass
class FaultContext:
    """What a fault may use while the drill runs: the run's node operations and the drill's
    clock (every deadline and confirmation poll is timed on it)."""

    ops: NodeOps
    clock: Clock
    log: Log
    rng: random.Random  # seeded from the scenario's seed: every random choice is replayable
    # Called with a node's name when a fault replaced its network namespace (a restarted
    # container gets a new one): the runner subscribes its probes, which open their sockets
    # of that node again in the new namespace before the fault's step reports done.
    namespace_listeners: list[Callable[[str], None]] = field(default_factory=list)

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
        """Make the change and confirm the backend shows it; BackendError if it does not."""

    def revert(self, ctx: FaultContext) -> None:
        """Undo the change and confirm the backend shows the original state."""


Builder = Callable[[Any], Fault]  # a resolved step of the kind it is registered for -> its fault
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


def build(step: Step) -> Fault:
    """The fault for a resolved timeline step."""
    _load_fault_modules()
    return _BUILDERS[step.kind](step)


def _load_fault_modules() -> None:
    # Importing a fault module registers its faults; listed here so there is one place to add one.
    from drills.engine import degrade, filter_faults, node_faults, steps  # noqa: F401


def wait_for(clock: Clock, done: Callable[[], bool], timeout_s: float, poll_s: float) -> bool:
    """Poll `done` on the drill clock until it is true (True) or `timeout_s` passed (False)."""
    deadline = clock.now_s() + timeout_s
    while not done():
        if clock.now_s() > deadline:
            return False
        clock.sleep_until(clock.now_s() + poll_s)
    return True


# --------------------------------------------------------------------------- link faults


@dataclass(frozen=True)
class LinkDown:
    """Carrier loss on a link: both ends administratively down (a fibre cut), or one end.

    Used by `link-down` and, for each of its down periods, by `link-flap`."""

    link: Link
    ends: tuple[Interface, ...]
    routes: tuple[tuple[Interface, tuple[Route, ...]], ...]  # per downed end: its node's routes through it
    reversible: bool = True

    @classmethod
    def from_step(cls, step: LinkDownStep) -> LinkDown:
        return cls(step.link, step.ends, step.routes)

    def describe(self, reverted: bool = False) -> str:
        return f"link {self.link.name}: {', '.join(e.endpoint for e in self.ends)} {'up again' if reverted else 'down'}"

    def touches(self) -> list[str]:
        downed = [f"{e.endpoint} admin state (down, then up; its static routes re-installed)" for e in self.ends]
        peers = [f"{e.endpoint} carrier (lost)" for e in (self.link.a, self.link.b) if e not in self.ends]
        return downed + peers

    def apply(self, ctx: FaultContext) -> None:
        for end in self.ends:
            ctx.ops.set_link(end.node, end.name, up=False)
        self._confirm(ctx, down=True)

    def revert(self, ctx: FaultContext) -> None:
        for end in self.ends:
            ctx.ops.set_link(end.node, end.name, up=True)
        self._confirm(ctx, down=False)
        # Setting an interface down made the kernel drop the static routes through it; a
        # router's configuration brings them back with the interface. Only those: a route
        # through another interface is still there, or that interface is down too (another
        # fault holds it) and its own revert re-installs it.
        for end, routes in self.routes:
            if routes:
                ctx.ops.replace_routes(end.node, routes)

    def _confirm(self, ctx: FaultContext, *, down: bool) -> None:
        # A veth shows the new state at once. A userspace link's carrier is set by its relay when
        # it sees the far end change (drills.userspace): poll for it, within a bound.
        for end in (self.link.a, self.link.b):

            def settled(end: Interface = end) -> bool:
                state = ctx.ops.link_state(end.node, end.name)
                return not state.carrier if down else state.admin_up and state.carrier

            if not wait_for(ctx.clock, settled, CARRIER_TIMEOUT_S, CARRIER_POLL_S):
                if down:
                    raise BackendError(f"{end.endpoint} still has carrier after link-down; the fault did not take effect")
                raise BackendError(f"{end.endpoint} is not up with carrier after reverting link-down")


register("link-down")(LinkDown.from_step)
register("link-flap")(LinkDown.from_step)  # the timeline expands a flap into down/up periods
