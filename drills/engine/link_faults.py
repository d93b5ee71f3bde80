"""Link faults: `link-down` (both ends administratively down, or one) and `link-flap` (the
timeline expands a flap into down/up periods of the same fault)."""

from __future__ import annotations

from dataclasses import dataclass

from drills.engine.fault import CARRIER_POLL_S, CARRIER_TIMEOUT_S, FaultContext, register, wait_for
from drills.errors import BackendError
from drills.scenario.resolved import Interface, Link, Route
from drills.scenario.steps import LinkDownStep


@dataclass(frozen=True)
class LinkDown:
    """Carrier loss on a link: both ends administratively down (a fibre cut), or one end.

    Used by `link-down` and, for each of its down periods, by `link-flap`."""

    link: Link
    ends: tuple[Interface, ...]
    routes: tuple[tuple[Interface, tuple[Route, ...]], ...]  # per downed end: its node's routes through it
    reversible: bool = True
    in_force_at_first_change = True  # either end down stops every packet crossing the link

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
                admin_up, carrier = ctx.ops.link_state(end.node, end.name)
                return not carrier if down else admin_up and carrier

            # Read once before polling: on a veth it is settled, and nothing more runs on the clock.
            if not settled() and not wait_for(ctx.clock, settled, CARRIER_TIMEOUT_S, CARRIER_POLL_S):
                if down:
                    raise BackendError(f"{end.endpoint} still has carrier after link-down; the fault did not take effect")
                raise BackendError(f"{end.endpoint} is not up with carrier after reverting link-down")
            if down:
                # One end read back without carrier: nothing crosses the link any more, whatever
                # the other end's read-back still has to confirm.
                ctx.mark_in_force()


register("link-down")(LinkDown.from_step)
register("link-flap")(LinkDown.from_step)  # the timeline expands a flap into down/up periods
