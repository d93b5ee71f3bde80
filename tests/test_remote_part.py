"""The agent's teardown of its host's part (what it deploys is drills.netns.part's, tested in
tests/test_wire*.py)."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from drills import realtime
from drills.remote.agent import Agent, _Request
from drills.remote.frames import FrameReader, FrameWriter
from drills.runs import RunStore


def test_a_probe_service_that_fails_to_stop_never_prevents_the_teardown(tmp_path: Path) -> None:
    class Broken:
        def stop_all(self) -> None:
            raise RuntimeError("stuck")

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    run = RunStore(state).create("part", tmp_path, run_id="ab0001")
    read_fd, write_fd = os.pipe()
    try:
        agent = Agent(FrameReader(read_fd), FrameWriter(write_fd))
        agent.run, agent.probes = run, Broken()  # type: ignore[assignment]
        report = agent.do_teardown()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert report.clean and agent.run is None and agent.probes is None
    assert not run.dir.exists()


def test_a_timed_request_runs_under_the_apply_priority_and_an_untimed_one_as_it_was() -> None:
    """A change the controller sent ahead (held to its instant on this host) runs as the
    controller runs its own faults (`realtime.applying`); the hold before it, and any other
    request, does not."""
    read_fd, write_fd = os.pipe()
    seen: dict[str, tuple[int, int]] = {}
    try:
        agent = Agent(FrameReader(read_fd), FrameWriter(write_fd))
        # The policy without SCHED_RESET_ON_FORK (what the applying thread starts begins ordinary).
        agent.do_look = lambda name: seen.setdefault(name, (os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority))  # type: ignore[attr-defined]
        lane: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        lane.put(_Request(1, "look", ["timed"], {}, at_s=agent.clock.now_s() + 0.01))
        lane.put(_Request(2, "look", ["untimed"], {}))
        lane.put(None)
        before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
        agent._lane(lane, threading.Lock())
        assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert seen["untimed"] == before
    if realtime.refusal() is None:
        assert seen["timed"] == (os.SCHED_FIFO, realtime.APPLY_PRIORITY)
    else:  # the host refuses SCHED_FIFO: the change runs as an ordinary thread, as before
        assert seen["timed"] == before
