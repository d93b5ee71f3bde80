"""Ramps and handovers: the schedule computed purely, the driver played on the fake clock with a
fake engine callback, and its stop (revert) honoured. The kernel engine's callback is exercised
in the VM lane (test_netem_kernel.py)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

import pytest

from drills.clock import FakeClock, SystemClock
from drills.engine import timevarying
from drills.engine.timevarying import Change, Driver, at_start, ramp_steps, schedule
from drills.errors import BackendError
from drills.impairment import Direction, Settings
from drills.scenario import model
from drills.scenario.resolved import Interface


def ramp(start: str, end: str, over: str) -> model.Ramp:
    return model.Ramp.model_validate({"from": start, "to": end, "over": over})


def handover(**fields: str) -> model.Handover:
    return model.Handover.model_validate(fields)


def test_ramp_steps_every_100_ms_or_every_1_ms_of_delay_whichever_is_coarser() -> None:
    assert ramp_steps(ramp("20ms", "600ms", "30s")) == 300  # 100 ms apart, 1.93 ms each
    assert ramp_steps(ramp("50ms", "60ms", "30s")) == 10  # 1 ms each, 3 s apart
    assert ramp_steps(ramp("60ms", "50ms", "30s")) == 10  # downwards too
    assert ramp_steps(ramp("50ms", "50ms", "30s")) == 0
    assert ramp_steps(ramp("10ms", "20ms", "0s")) == 1  # at once


def test_a_ramp_schedule_starts_at_from_and_ends_at_to() -> None:
    s = Settings(delay_s=0.5, jitter_s=0.002, loss_pct=1.0, ramp=ramp("20ms", "600ms", "30s"))
    start = at_start(s)
    assert start == Settings(delay_s=0.02, jitter_s=0.002, loss_pct=1.0)  # steady: no ramp left in it
    changes = list(schedule(s))
    assert len(changes) == 300
    assert changes[0].offset_s == pytest.approx(0.1) and changes[0].settings.delay_s == pytest.approx(0.021933)
    assert changes[-1] == Change(pytest.approx(30.0), replace(start, delay_s=0.6))  # type: ignore[arg-type]
    assert all(b.offset_s - a.offset_s == pytest.approx(0.1) for a, b in itertools.pairwise(changes))
    assert all(c.settings.ramp is None and c.settings.jitter_s == 0.002 for c in changes)
    assert all(b.settings.delay_s > a.settings.delay_s for a, b in itertools.pairwise(changes))


def test_handover_spikes_the_delay_and_bursts_the_loss_every_period() -> None:
    gm = model.GilbertElliott(p=1.0, r=30.0)
    s = Settings(delay_s=0.018, loss_bursts=gm, handover=handover(every="15s", delay_spike="40ms", spike_length="1s", loss_burst="50ms"))
    first = list(itertools.islice(schedule(s), 6))
    base = Settings(delay_s=0.018, loss_bursts=gm)
    spiked = replace(base, delay_s=0.058)
    assert first == [
        Change(15.0, replace(spiked, loss_pct=100.0, loss_bursts=None)),  # both begin together
        Change(15.05, spiked),  # the burst ends, the bursty model is back
        Change(16.0, base),
        Change(30.0, replace(spiked, loss_pct=100.0, loss_bursts=None)),
        Change(30.05, spiked),
        Change(31.0, base),
    ]
    lte = Settings(delay_s=0.025, handover=handover(every="60s", loss_burst="40ms"))  # no spike
    assert list(itertools.islice(schedule(lte), 2)) == [
        Change(60.0, replace(at_start(lte), loss_pct=100.0)),
        Change(60.04, at_start(lte)),
    ]


def test_ramp_and_handover_compose() -> None:
    s = Settings(ramp=ramp("10ms", "20ms", "2s"), handover=handover(every="1s", delay_spike="100ms", spike_length="500ms"))
    delays = [(round(c.offset_s, 3), round(c.settings.delay_s, 6)) for c in itertools.islice(schedule(s), 6)]
    # Ramp: 10 steps of 1 ms every 200 ms; a spike of 100 ms on top from 1 s to 1.5 s.
    assert delays[:5] == [(0.2, 0.011), (0.4, 0.012), (0.6, 0.013), (0.8, 0.014), (1.0, 0.115)]


def ends(name: str) -> tuple[Interface, Interface]:
    a = Interface(node="a", name="e1", ipv4=None, ipv6=None, mtu=None)
    b = Interface(node="b", name="e1", ipv4=None, ipv6=None, mtu=None)
    return (a, b) if name == "a-to-b" else (b, a)


def direction(name: str, settings: Settings) -> Direction:
    end, peer = ends(name)
    return Direction(name, end, peer, settings)


def test_the_driver_plays_every_direction_on_the_fake_clock() -> None:
    clock = FakeClock(100.0)
    applied: list[tuple[float, str, float]] = []
    directions = [
        direction("a-to-b", Settings(ramp=ramp("10ms", "15ms", "1s"))),
        direction("b-to-a", Settings(delay_s=0.01)),  # steady: nothing to drive
    ]
    driver = Driver(directions, lambda d, s: applied.append((clock.now_s(), d.name, s.delay_s)), clock)
    assert driver.needed and [d.name for d in driver.directions] == ["a-to-b"]
    driver.run(started_s=100.0)
    assert applied == [(pytest.approx(100.0 + 0.2 * k), "a-to-b", pytest.approx(0.010 + 0.001 * k)) for k in range(1, 6)]
    assert [(r.direction, round(r.offset_s, 3)) for r in driver.records] == [("a-to-b", round(0.2 * k, 3)) for k in range(1, 6)]
    assert all(r.confirmed_s == r.scheduled_s and r.error is None for r in driver.records)


def test_a_handover_driver_runs_until_stopped_and_a_failed_change_stops_it() -> None:
    clock = FakeClock(0.0)
    s = Settings(delay_s=0.02, handover=handover(every="10s", loss_burst="1s"))
    seen: list[float] = []
    driver = Driver([direction("a-to-b", s)], lambda d, st: seen.append(st.loss_pct), clock)
    driver.run(started_s=0.0, until_offset_s=35.0)  # endless otherwise: the revert stops it
    assert seen == [100.0, 0.0, 100.0, 0.0, 100.0, 0.0]

    def broken(d: Direction, st: Settings) -> None:
        raise BackendError("netlink says no")

    logged: list[str] = []
    failing = Driver([direction("a-to-b", s)], broken, FakeClock(0.0), logged.append, label="degrade wire")
    failing.run(started_s=0.0)  # returns: a failure ends the schedule
    assert failing.error == "degrade wire a-to-b delay 20 ms, loss 100 % at +10.000 s: netlink says no"
    assert len(failing.records) == 1 and failing.records[0].error == "netlink says no"
    assert logged and logged[0].startswith("CHANGE FAILED")


def test_stop_ends_a_running_driver_before_its_next_change() -> None:
    calls: list[Settings] = []
    gate = threading.Event()

    def apply(d: Direction, st: Settings) -> None:
        calls.append(st)
        gate.set()

    s = Settings(delay_s=0.01, handover=handover(every="50ms", loss_burst="10ms"))
    driver = Driver([direction("a-to-b", s)], apply, SystemClock())
    driver.start()
    assert gate.wait(5.0)
    driver.stop()
    count = len(calls)
    assert count >= 1
    threading.Event().wait(0.2)  # nothing lands after stop()
    assert len(calls) == count
    assert timevarying.time_varying(s) and not timevarying.time_varying(at_start(s))
