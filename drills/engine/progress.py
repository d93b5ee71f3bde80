"""What a running drill tells an observer (the CLI's live view), as typed events.

The engine never prints: it calls `progress(event)` on its own thread, at the moments listed
here, and the observer must return at once (record the event, render later on its own thread).
Probe health is pulled, not pushed: `ClockStarted.snapshot` reads the probes' counters when the
observer wants them, so nothing runs on the clock's thread between faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drills.records import ProbeHealth  # re-exported: the live view reads it from here

__all__ = ["ClockStarted", "ClockStopped", "Event", "ProbeHealth", "Progress", "Scheduled", "Snapshot", "StepDone", "ignore"]


@dataclass(frozen=True)
class Scheduled:
    """One action of the timeline: when it is due (drill seconds) and what it does."""

    at_s: float
    kind: str  # "apply" | "revert"
    label: str
    fault: str
    describe: str


Snapshot = Callable[[], list[ProbeHealth]]


@dataclass(frozen=True)
class ClockStarted:
    """The drill clock's zero has passed; `t0_s` is on the clock the engine was given."""

    scenario: str
    run_id: str
    t0_s: float
    duration_s: float
    schedule: tuple[Scheduled, ...]
    snapshot: Snapshot


@dataclass(frozen=True)
class StepDone:
    """An action was performed: issued and confirmed in the kernel (drill seconds)."""

    at_s: float
    kind: str
    label: str
    fault: str
    detail: str
    issued_s: float
    confirmed_s: float

    @property
    def lag_s(self) -> float:
        """From the scheduled instant to the kernel's confirmation."""
        return self.confirmed_s - self.at_s


@dataclass(frozen=True)
class ClockStopped:
    """The timeline is over (or was cut short): probes are stopping, analysis follows."""

    elapsed_s: float


Event = ClockStarted | StepDone | ClockStopped
Progress = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default observer."""
