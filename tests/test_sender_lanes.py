"""A stream's sender lanes (drills.probes.udp_stream), on real namespaces, sockets and threads:
each lane held to its own CPU, and the second sending on time while the first is held up, as a
vCPU the hypervisor stops running holds up the thread on it."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from line_testing import two_node_line

from drills import lifecycle
from drills.clock import SystemClock
from drills.netns.sockets import NamespaceSockets
from drills.probes.udp_stream import UdpStream

RATE_PPS = 1000
HOLD_S = 0.3


class _HoldingClock(SystemClock):
    """The system clock, but the first lane's first wait that begins `after_s` or more after
    `begin()` lasts `HOLD_S` longer. The lane holds neither the GIL nor the stream's lock
    meanwhile: it is stopped, as a thread on a CPU that does not run is."""

    def __init__(self, after_s: float) -> None:
        self._after_s = after_s
        self._from_s = float("inf")
        self.held: tuple[float, float] | None = None

    def begin(self) -> None:
        self._from_s = self.now_s() + self._after_s

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        if self.held is None and threading.current_thread().name.endswith("-send0") and self.now_s() >= self._from_s:
            began_s = self.now_s()
            time.sleep(HOLD_S)
            self.held = (began_s, self.now_s())
        return super().sleep_until(instant_s, stop, precise)


def _wait_held(stream: UdpStream, cpus: list[int]) -> dict[int, set[int]]:
    """Each running lane's CPU set as the kernel holds it, once every lane has held itself
    (bounded: 5 s)."""
    deadline = time.monotonic() + 5.0
    while True:
        seen = {lane: os.sched_getaffinity(thread.native_id or 0) for lane, thread in enumerate(stream._senders)}
        if all(seen[lane] == {cpu} for lane, cpu in enumerate(cpus)) or time.monotonic() > deadline:
            return seen
        time.sleep(0.01)


@pytest.mark.netns
def test_the_second_lane_sends_on_time_while_the_first_is_held_up(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """With two CPUs or more: the lanes are held to two distinct CPUs (the kernel's affinity of
    each thread says so); the first lane stopped for 300 ms leaves no interval of even 100 ms
    between two sends, the second lane sending meanwhile; the stream is still one sequence,
    sent in order. With one CPU: one lane, held to nothing."""
    up = two_node_line(tmp_path, state_dir, "lanes")
    a, b = up.topology.node("a").primary_address, up.topology.node("b").primary_address
    assert a is not None and b is not None
    clock = _HoldingClock(after_s=0.2)
    stream = UdpStream("lanes", NamespaceSockets(up.meta.nodes), "a", a, "b", b, RATE_PPS, 64, clock, tag=11)
    cpus = list(stream.record.lane_cpus)
    try:
        clock.begin()
        stream.start()
        held = _wait_held(stream, cpus) if len(cpus) > 1 else {}
        time.sleep(0.2 + HOLD_S + 0.3)
    finally:
        record = stream.stop(drain_s=0.2)
        lifecycle.down(state_dir, up.meta.run_id)
    sent = record.sent
    assert len(sent) == len(record.send_lateness_s) == sum(record.lane_sent) > 500
    assert all(x <= y for x, y in itertools.pairwise(sent)), "sent in the order of their sequence numbers"
    assert set(record.received) <= set(range(len(sent)))
    if len(sorted(os.sched_getaffinity(0))) < 2:
        assert record.lane_cpus == [-1] and len(record.lane_sent) == 1
        return
    assert len(cpus) == 2 and cpus[0] != cpus[1] and record.lane_cpus == cpus
    assert held == {0: {cpus[0]}, 1: {cpus[1]}}
    assert clock.held is not None
    begin_s, end_s = clock.held
    # The hold lasted 300 ms: a gap of 100 ms would need the second lane stopped for 100 ms too.
    during = [t for t in sent if begin_s <= t <= end_s]
    widest_s = max(y - x for x, y in itertools.pairwise([begin_s, *during, end_s]))
    assert widest_s < 0.1, widest_s
    assert record.lane_sent[1] >= 0.1 * RATE_PPS  # at least a third of the hold's packets
