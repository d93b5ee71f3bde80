"""`degrade`: impair one or both directions of a link, through the seam's impairment operation.

Direction a-to-b is the traffic from a link's first endpoint to its second: it is impaired on
the egress of endpoint a; b-to-a on the egress of b. The resolved step (drills.scenario.steps)
carries each direction with its merged settings: the link's own profile (in force from deploy),
then the step's profile and its `reverse` (b-to-a), then the parameters written on the step.
Revert goes back to the link's own profile, or to no impairment at all.

The fault knows no engine: `ctx.ops.impair` puts a direction's settings in force through the
one serving the link (kernel qdiscs, or the userspace relay; drills.netns.ops_impair) and reads
them back. A `ramp` or a profile's `handover` starts at its first values; the driver of
timevarying.py plays the rest on the drill clock, each change an in-place `impair` from its own
thread, and is stopped before the revert. What netem would refuse is refused when the fault is
built, and before anything is deployed (degrade_checks.requirements).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drills.backend import Impairment
from drills.engine import timevarying
from drills.engine.degrade_checks import NOTHING, invalid
from drills.engine.degrade_checks import not_applied_yet as not_applied_yet
from drills.engine.degrade_checks import requirements as requirements
from drills.engine.fault import FaultContext, register
from drills.engines import USERSPACE
from drills.errors import BadInput
from drills.impairment import Direction, Settings, profile_directions, qdisc_text
from drills.scenario.resolved import Link
from drills.scenario.steps import DegradeStep


@dataclass(frozen=True)
class LinkDegrade:
    """Impairments on one or both directions of a link. Revert goes back to the link's own
    profile, or to nothing."""

    link: Link
    directions: tuple[Direction, ...]
    profile: str | None = None
    reversible: bool = True
    in_force_at_first_change = False
    # Ramps and handovers: the driver playing them while the degrade is applied (timevarying).
    _driver: dict[str, timevarying.Driver] = field(default_factory=dict, compare=False, repr=False)
    _played: list[timevarying.ChangeRecord] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_step(cls, step: DegradeStep) -> LinkDegrade:
        """The registered builder: refuses what netem would refuse (`requirements` reports it,
        located in the file, before anything is deployed; the relay keeps to netem's rules)."""
        for direction in step.directions:
            wrong = invalid(direction.settings)
            if direction.settings.empty:
                wrong.append(NOTHING)
            if wrong:
                raise BadInput(f"degrade {direction.name} on link {step.link.name}: {'; '.join(wrong)}")
        return cls(step.link, step.directions, step.profile)

    def describe(self, reverted: bool = False) -> str:
        if reverted:
            ends = ", ".join(d.end.endpoint for d in self.directions)
            spec = self.link.profile_spec
            back = f"profile {self.link.profile}" if self.link.profile else "its own delay" if spec else "the default qdisc"
            return f"link {self.link.name}: degrade lifted ({ends} back to {back})"
        via = f" (profile {self.profile})" if self.profile else ""
        texts = {d.settings.text() for d in self.directions}
        if len(self.directions) == 2 and len(texts) == 1:
            return f"degrade link {self.link.name}{via}, both directions: {texts.pop()}"
        each = "; ".join(f"{d.name} {d.settings.text()}" for d in self.directions)
        return f"degrade link {self.link.name}{via}: {each}"

    def touches(self) -> list[str]:
        out = []
        for d in self.directions:
            qdisc = f"{d.end.endpoint} egress root qdisc ({qdisc_text(d.settings)})"
            relay = f"link {self.link.name} relay, direction {d.name} ({d.settings.text()})"
            # An `auto` link's engine depends on the host (see `drill plan`'s links): named as the kernel's.
            out.append(relay if self.link.engine == USERSPACE else qdisc)
        return out

    def apply(self, ctx: FaultContext) -> None:
        # A ramp or a handover goes in at its start, in a form its driver can change in place.
        ctx.ops.impair([Impairment(self.link, d.name, d.settings) for d in self.directions])
        self._start_driver(ctx)

    def revert(self, ctx: FaultContext) -> None:
        self._stop_driver()
        # Back to the link's own profile where it has one (put in force at deploy), else to nothing.
        own = {d.name: d.settings for d in profile_directions(self.link) if not d.settings.empty}
        ctx.ops.impair([Impairment(self.link, d.name, own.get(d.name)) for d in self.directions])

    def changes(self) -> list[timevarying.ChangeRecord]:
        """Every ramp or handover change played so far (for the run's step records)."""
        running = [record for driver in self._driver.values() for record in driver.records]
        return [*self._played, *running]

    def _start_driver(self, ctx: FaultContext) -> None:
        """Play the ramps and handovers, if any, from the step's instant, on the drill clock. The driver's thread
        calls the node operations itself: they give each thread its own sockets."""
        if not any(timevarying.time_varying(d.settings) for d in self.directions) or "on" in self._driver:
            return

        def change(direction: Direction, settings: Settings) -> None:
            ctx.ops.impair([Impairment(self.link, direction.name, settings, in_place=True)])

        driver = timevarying.Driver(self.directions, change, ctx.clock, ctx.log, label=f"degrade {self.link.name}")
        self._driver["on"] = driver
        driver.start(ctx.due_s)

    def _stop_driver(self) -> None:
        """Stop the driver before restoring: no change may land after the revert."""
        if "on" in self._driver:
            driver = self._driver.pop("on")
            driver.stop()
            self._played.extend(driver.records)


register("degrade")(LinkDegrade.from_step)
