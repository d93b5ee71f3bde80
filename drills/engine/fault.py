"""What a fault is and what it may use: the `Fault` interface, the `FaultContext` a fault acts
through (the run's node operations and the drill clock), `register` for the builders, and
`wait_for`, the confirmation poll on the drill clock. A leaf of the engine: the fault modules
import it, and the registry (drills.engine.faults) imports the fault modules."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from drills.backend import NodeOps
from drills.clock import Clock

Log = Callable[[str], None]
CARRIER_TIMEOUT_S = 1.0  # for a link's carrier to follow an admin change (a relay polls for it)
CARRIER_POLL_S = 0.0001


@dataclass
class FaultContext:
    """What a fault may use while the drill runs: the run's node operations and the drill's
    clock (every deadline and confirmation poll is timed on it)."""

    ops: NodeOps
    clock: Clock
    log: Log
    rng: random.Random  # seeded from the scenario's seed: every random choice is replayable
    # The drill-clock instant the step being applied or reverted is due (None outside a step).
    # A fault may run ahead of it (on other hosts the agents hold its operations until then):
    # what it starts on the clock itself (a ramp's driver) starts from this instant, not now.
    due_s: float | None = None
    # Called with a node's name when a fault replaced its network namespace (a restarted
    # container gets a new one): the runner subscribes its probes, which open their sockets
    # of that node again in the new namespace before the fault's step reports done.
    namespace_listeners: list[Callable[[str], None]] = field(default_factory=list)
    # When the step being applied was certainly in force (drill clock; None: not marked). The
    # runner clears it before each step and records it as the step's `in_force_s`.
    in_force_s: float | None = None

    def mark_in_force(self, at_s: float | None = None) -> None:
        """The fault being applied (or reverted) is in force now: its kernel acknowledged what it changed (and
        read it back, where an acknowledgement alone does not prove it: a link's carrier), and
        what it still does before returning (a process kill and its wait, the read-back of the
        rest) only confirms it. Narrows the event's window to [issued, now], or to [issued,
        at_s] when the backend tells an earlier instant on this clock (processes seen stopped
        before a last scan only proved none was missed); the first mark of a step counts.
        Confirmation stays the apply's return."""
        if self.in_force_s is None:
            now_s = self.clock.now_s()
            self.in_force_s = now_s if at_s is None else min(at_s, now_s)

    def namespace_replaced(self, node: str) -> None:
        """Announce that `node`'s namespace was replaced (its name now denotes a new one)."""
        for listener in self.namespace_listeners:
            listener(node)


class Fault(Protocol):
    """One change to the testbed, applied and reverted on the drill clock."""

    @property
    def reversible(self) -> bool:
        """False for one-shot steps (note, exec): nothing to undo."""

    @property
    def in_force_at_first_change(self) -> bool:
        """True when any one of its changes alone puts it in force (each end of a cut link
        stops every packet crossing it): applied, it was in force once the first change was
        confirmed, not only the last, which narrows when it took effect."""

    def describe(self, reverted: bool = False) -> str:
        """One line for the log and the report."""

    def touches(self) -> list[str]:
        """Every object this fault changes, for `drill plan` (`node:iface link state`, ...)."""

    def apply(self, ctx: FaultContext) -> None:
        """Make the change and confirm the backend shows it; BackendError if it does not."""

    def revert(self, ctx: FaultContext) -> None:
        """Undo the change and confirm the backend shows the original state."""


@runtime_checkable
class Armable(Protocol):
    """A fault with something to put in place before the clock, with no effect yet (a packet
    filter's hooked chains, with no rule), so that applying it on the clock does less."""

    def arm(self, ctx: FaultContext) -> None:
        """Prepare, before the drill clock starts; nothing may change for traffic."""


Builder = Callable[[Any], Fault]  # a resolved step of the kind it is registered for -> its fault
BUILDERS: dict[str, Builder] = {}


def register(kind: str) -> Callable[[Builder], Builder]:
    """Decorator: `@register("link-down")` on a function or class building a Fault from a step."""

    def add(builder: Builder) -> Builder:
        BUILDERS[kind] = builder
        return builder

    return add


def wait_for(clock: Clock, done: Callable[[], bool], timeout_s: float, poll_s: float) -> bool:
    """Poll `done` on the drill clock until it is true (True) or `timeout_s` passed (False)."""
    deadline = clock.now_s() + timeout_s
    while not done():
        if clock.now_s() > deadline:
            return False
        clock.sleep_until(clock.now_s() + poll_s)
    return True


