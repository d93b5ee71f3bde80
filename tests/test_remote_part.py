"""The agent's teardown of its host's part (what it deploys is drills.netns.part's, tested in
tests/test_wire*.py)."""

from __future__ import annotations

import os
from pathlib import Path

from drills.remote.agent import Agent
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
