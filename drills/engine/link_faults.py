"""Link faults: `link-down` (both ends administratively down, or one) and `link-flap` (the
timeline expands a flap into down/up periods of the same fault), of a link or of a LAN segment
(every member's port, or one)."""

from __future__ import annotations

from dataclasses import dataclass

from drills.engine.fault import CARRIER_POLL_S, CARRIER_TIMEOUT_S, FaultContext, register, wait_for
from drills.errors import BackendError
from drills.scenario.resolved import Interface, Link, Route
from drills.scenario.steps import LinkDownStep, SegmentDownStep


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
        # A veth shows the new state at once. A userspace link's carrier is set by its relay when
        # it sees the far end change (drills.userspace): both ends are polled, within a bound.
        # Either end without carrier: nothing crosses the link any more (in force at the first).
        ports_down(ctx, self.ends, watched=(self.link.a, self.link.b), what="link-down", in_force_after=1)

    def revert(self, ctx: FaultContext) -> None:
        ports_up(ctx, self.ends, self.routes, watched=(self.link.a, self.link.b), what="link-down")


@dataclass(frozen=True)
class SegmentDown:
    """A LAN segment's ports down (`step.ends`): every member's (the switch failed) or one
    member's. Each downed member's interface goes administratively down, so the member sees its
    link go, as a router whose switch port died does; the members left up keep their carrier
    and still talk to each other."""

    step: SegmentDownStep
    reversible: bool = True

    @property
    def in_force_at_first_change(self) -> bool:
        # One port: its change is the fault. A whole segment is cut only once every port is.
        return len(self.step.ends) == 1

    @classmethod
    def from_step(cls, step: SegmentDownStep) -> SegmentDown:
        return cls(step)

    def describe(self, reverted: bool = False) -> str:
        segment, ends = self.step.segment, self.step.ends
        what = "every port:" if len(ends) == len(segment.members) else "port of"
        return f"segment {segment.name}: {what} {', '.join(e.endpoint for e in ends)} {'up again' if reverted else 'down'}"

    def touches(self) -> list[str]:
        return [f"{e.endpoint} admin state (down, then up; its static routes re-installed)" for e in self.step.ends]

    def apply(self, ctx: FaultContext) -> None:
        # One port: in force once it is down; the whole switch only once every port is.
        ends = self.step.ends
        ports_down(ctx, ends, watched=ends, what="segment link-down", in_force_after=1 if len(ends) == 1 else len(ends))

    def revert(self, ctx: FaultContext) -> None:
        ports_up(ctx, self.step.ends, self.step.routes, watched=self.step.ends, what="segment link-down")


def ports_down(
    ctx: FaultContext, ends: tuple[Interface, ...], *, watched: tuple[Interface, ...], what: str, in_force_after: int
) -> None:
    """Set `ends` administratively down, then confirm `watched` lost carrier; the fault is in
    force (`FaultContext.mark_in_force`) once `in_force_after` of them read back without it."""
    for end in ends:
        ctx.ops.set_link(end.node, end.name, up=False)
    _settle(ctx, watched, down=True, what=what, in_force_after=in_force_after)


def ports_up(
    ctx: FaultContext,
    ends: tuple[Interface, ...],
    routes: tuple[tuple[Interface, tuple[Route, ...]], ...],
    *,
    watched: tuple[Interface, ...],
    what: str,
) -> None:
    """Set `ends` up again, confirm `watched` are up with carrier, and re-install `routes`."""
    for end in ends:
        ctx.ops.set_link(end.node, end.name, up=True)
    _settle(ctx, watched, down=False, what=what)
    # Setting an interface down made the kernel drop the static routes through it; a
    # router's configuration brings them back with the interface. Only those: a route
    # through another interface is still there, or that interface is down too (another
    # fault holds it) and its own revert re-installs it.
    for end, through in routes:
        if through:
            ctx.ops.replace_routes(end.node, through)


def _settle(ctx: FaultContext, ends: tuple[Interface, ...], *, down: bool, what: str, in_force_after: int = 0) -> None:
    """Each of `ends` without carrier (`down`), or up with carrier again, within the bound; the
    change marked in force once `in_force_after` of them settled (0: not marked here)."""
    for settled_count, end in enumerate(ends, 1):

        def settled(end: Interface = end) -> bool:
            admin_up, carrier = ctx.ops.link_state(end.node, end.name)
            return not carrier if down else admin_up and carrier

        # Read once before polling: on a veth it is settled, and nothing more runs on the clock.
        if not settled() and not wait_for(ctx.clock, settled, CARRIER_TIMEOUT_S, CARRIER_POLL_S):
            if down:
                raise BackendError(f"{end.endpoint} still has carrier after {what}; the fault did not take effect")
            raise BackendError(f"{end.endpoint} is not up with carrier after reverting {what}")
        if settled_count == in_force_after:
            ctx.mark_in_force()


def link_down(step: LinkDownStep | SegmentDownStep) -> LinkDown | SegmentDown:
    """The fault of a `link-down` or `link-flap` step: of a link, or of a LAN segment."""
    if isinstance(step, SegmentDownStep):
        return SegmentDown.from_step(step)
    return LinkDown.from_step(step)


register("link-down")(link_down)
register("link-flap")(link_down)  # the timeline expands a flap into down/up periods
