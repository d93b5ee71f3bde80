"""One monotonic clock for faults and probes, injectable so tests can run a drill instantly."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from drills import realtime


class Clock(Protocol):
    def now_s(self) -> float:
        """Seconds on a monotonic clock (time.monotonic for the system clock)."""

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        """Wait until `instant_s`; False when `stop` was set first. `precise` trades CPU for
        punctuality (fault instants); probes, which wait every millisecond, must not spin."""


class SystemClock:
    """time.monotonic. A precise wait sleeps to ~2 ms before the instant, then spin-yields the
    rest: a plain sleep can overshoot by a scheduler tick, which would smear fault instants.
    A real-time thread (drills.realtime: the controller while the clock runs) is woken on time,
    ahead of every ordinary task, so it spins only the last 0.3 ms: a 2 ms spin at real-time
    priority would keep the ordinary tasks on its CPU (the nodes' daemons, the kernel's deferred
    packet processing) waiting at every fault's instant."""

    SPIN_S = 0.002
    REALTIME_SPIN_S = 0.0003

    def now_s(self) -> float:
        return time.monotonic()

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        spin_s = (self.REALTIME_SPIN_S if realtime.current() is not None else self.SPIN_S) if precise else 0.0
        while True:
            remaining = instant_s - time.monotonic()
            if stop is not None and stop.is_set():
                return False
            if remaining <= 0:
                return True
            if remaining > spin_s:
                if stop is not None:
                    if stop.wait(remaining - spin_s):
                        return False
                else:
                    time.sleep(remaining - spin_s)
            else:
                time.sleep(0)


class FakeClock:
    """A clock that jumps: sleeping moves time forward at once (unit tests)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.t = start_s

    def now_s(self) -> float:
        return self.t

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        if stop is not None and stop.is_set():
            return False
        self.t = max(self.t, instant_s)
        return True
