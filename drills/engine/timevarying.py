"""Time-varying impairments: delay ramps and periodic handovers, driven as a schedule of changes.

A direction's `Settings` may carry a `ramp` (delay from X to Y over T) or a `handover` (every P
seconds a delay spike and a loss burst, from its profile). Neither is something a qdisc can do
by itself, so both become a schedule: at offset t (seconds after the degrade was applied) put
these steady `Settings` in force. The schedule is computed purely (`schedule`, `at_start`), so
it is unit-tested with the fake clock; the `Driver` plays it on the drill clock in a thread of
its own and hands each change to a callback `apply_settings(direction, settings)`: the degrade
fault's, an in-place `impair` through the node operations (the kernel engine changes its netem
in place, the userspace engine tells its relay). The driver knows nothing of engines.

Ramp: the delay moves in equal steps, one every 100 ms or one per 1 ms of change, whichever is
coarser (fewer changes): 20 -> 600 ms over 30 s is 300 steps of 1.93 ms every 100 ms; 50 -> 60 ms
over 30 s is 10 steps of 1 ms every 3 s. It starts at `from` when applied and holds `to` after.

Handover: the first one falls one period after the degrade is applied, then every period while
it lasts. During one, the delay is raised by `delay_spike` for `spike_length`, and every packet
is lost for `loss_burst` (loss 100 %, which replaces a Gilbert-Elliott model for that while).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from drills.clock import Clock
from drills.impairment import at_start as at_start
from drills.impairment import ramp_steps as ramp_steps
from drills.impairment import steady as steady

if TYPE_CHECKING:
    from drills.impairment import Direction, Settings
    from drills.scenario import model

SAME_INSTANT_S = 1e-6  # events closer than this are one change
STOP_TIMEOUT_S = 5.0

ApplySettings = Callable[["Direction", "Settings"], None]


def time_varying(settings: Settings) -> bool:
    return settings.ramp is not None or settings.handover is not None


def _ramp_events(ramp: model.Ramp) -> Iterator[tuple[float, str, float]]:
    n = ramp_steps(ramp)
    for k in range(1, n + 1):
        delay_s = ramp.delay_from + (ramp.delay_to - ramp.delay_from) * k / n
        yield (ramp.over * k / n, "delay", round(delay_s, 6))  # netem and relays take microseconds


def _handover_events(handover: model.Handover) -> Iterator[tuple[float, str, float]]:
    """("spike"|"burst", 1.0 on / 0.0 off) events, forever: the driver stops when reverted."""
    for k in itertools.count(1):
        start_s = k * handover.every
        events = []
        if handover.delay_spike and handover.spike_length:
            events += [(start_s, "spike", 1.0), (start_s + handover.spike_length, "spike", 0.0)]
        if handover.loss_burst:
            events += [(start_s, "burst", 1.0), (start_s + handover.loss_burst, "burst", 0.0)]
        if not events:
            return
        yield from sorted(events)


@dataclass(frozen=True)
class Change:
    """At `offset_s` after the degrade was applied, put `settings` (steady) in force."""

    offset_s: float
    settings: Settings


def schedule(settings: Settings) -> Iterator[Change]:
    """Every change after offset 0, in order; endless when there is a handover."""
    base = at_start(settings)
    sources: list[Iterator[tuple[float, str, float]]] = []
    if settings.ramp is not None:
        sources.append(_ramp_events(settings.ramp))
    if settings.handover is not None:
        sources.append(_handover_events(settings.handover))
    handover = settings.handover
    state = {"delay": base.delay_s, "spike": 0.0, "burst": 0.0}
    current = base
    events = heapq.merge(*sources)
    pending = next(events, None)
    while pending is not None:
        instant_s = pending[0]
        while pending is not None and pending[0] - instant_s < SAME_INSTANT_S:
            state[pending[1]] = pending[2]
            pending = next(events, None)
        new = replace(base, delay_s=state["delay"])
        if handover is not None and state["spike"]:
            new = replace(new, delay_s=round(new.delay_s + handover.delay_spike, 6))
        if state["burst"]:
            new = replace(new, loss_pct=100.0, loss_bursts=None)
        if new != current:
            current = new
            yield Change(instant_s, new)


def extremes(settings: Settings) -> list[Settings]:
    """The steady settings a schedule reaches at its extremes (checked by `degrade_checks.invalid`)."""
    found = [at_start(settings)]
    if settings.ramp is not None:
        found.append(replace(found[0], delay_s=settings.ramp.delay_to))
    if settings.handover is not None and settings.handover.delay_spike:
        found += [replace(s, delay_s=s.delay_s + settings.handover.delay_spike) for s in list(found)]
    return found


def merged(directions: Sequence[Direction]) -> Iterator[tuple[Change, Direction]]:
    """The changes of every direction, in time order (a-to-b first at equal instants)."""

    def tagged(i: int, direction: Direction) -> Iterator[tuple[float, int, Change, Direction]]:
        for change in schedule(direction.settings):
            yield change.offset_s, i, change, direction

    streams = [tagged(i, d) for i, d in enumerate(directions)]
    for _offset, _i, change, direction in heapq.merge(*streams, key=lambda e: (e[0], e[1])):
        yield change, direction


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class ChangeRecord:
    """One change played: scheduled, issued and confirmed instants on the driver's clock."""

    direction: str
    offset_s: float
    scheduled_s: float
    issued_s: float
    confirmed_s: float
    detail: str
    error: str | None = None


class Driver:
    """Plays the schedules of `directions` on `clock` through `apply_settings`.

    `start()` runs it in a daemon thread from now; `stop()` ends it and waits until no change is
    in flight (revert calls it before restoring). `run()` plays it in the caller's thread (with a
    fake clock, in tests). A change that fails stops the driver: it is recorded (`records`,
    `error`) and logged, and the revert that follows restores the link anyway."""

    def __init__(
        self,
        directions: Sequence[Direction],
        apply_settings: ApplySettings,
        clock: Clock,
        log: Callable[[str], None] = lambda _m: None,
        label: str = "degrade",
    ) -> None:
        self.directions = tuple(d for d in directions if time_varying(d.settings))
        self.apply_settings = apply_settings
        self.clock = clock
        self.log = log
        self.label = label
        self.records: list[ChangeRecord] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def needed(self) -> bool:
        return bool(self.directions)

    def run(self, started_s: float, until_offset_s: float | None = None) -> None:
        for change, direction in merged(self.directions):
            if until_offset_s is not None and change.offset_s > until_offset_s:
                return
            scheduled = started_s + change.offset_s
            # Not precise (no spinning): a change every 100 ms at most, and probes need the CPU.
            if not self.clock.sleep_until(scheduled, self._stop):
                return
            issued = self.clock.now_s()
            detail = f"{direction.name} {change.settings.text()}"
            try:
                self.apply_settings(direction, change.settings)
            except Exception as exc:  # a thread must not die silently: record, log, stop
                self.error = f"{self.label} {detail} at +{change.offset_s:.3f} s: {exc}"
                self.records.append(ChangeRecord(direction.name, change.offset_s, scheduled, issued, issued, detail, str(exc)))
                self.log(f"CHANGE FAILED, {self.error}; the driver stops, revert restores the link")
                return
            confirmed = self.clock.now_s()
            self.records.append(ChangeRecord(direction.name, change.offset_s, scheduled, issued, confirmed, detail))
            self.log(f"{self.label} +{change.offset_s:.3f} s: {detail} (confirmed +{(confirmed - scheduled) * 1e3:.2f} ms)")

    def start(self, started_s: float | None = None) -> None:
        """Play from `started_s` (default: now) in a daemon thread."""
        if not self.needed or self._thread is not None:
            return
        origin = self.clock.now_s() if started_s is None else started_s
        self._thread = threading.Thread(target=self.run, args=(origin,), name=f"drills-{self.label}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self.log(f"{self.label}: the driver did not stop within {STOP_TIMEOUT_S:g} s")
            self._thread = None
