"""Both ends of a lost channel, without a kernel: the dead-man switch's logic on a fake clock
(silence past the window fires it once, a frame in time does not, a loss fires it at once, an
orderly bye disarms it), and the controller's client facing an agent that sends a bad frame.
Waits are bounded by events (5 s caps), never asserted as durations."""

from __future__ import annotations

import sys
import threading

import pytest

from drills.clock import FakeClock
from drills.errors import BackendError
from drills.remote.client import AgentClient
from drills.remote.deadman import DeadMan

CAP_S = 5.0


def switch(clock: FakeClock) -> tuple[DeadMan, list[str], threading.Event]:
    fired: list[str] = []
    event = threading.Event()

    def on_loss(reason: str) -> None:
        fired.append(reason)
        event.set()

    deadman = DeadMan(2.0, on_loss, clock)
    deadman.start()
    return deadman, fired, event


def test_silence_past_the_window_fires_once() -> None:
    clock = FakeClock()
    deadman, fired, event = switch(clock)
    clock.t += 1.9
    deadman.heard()
    clock.t += 1.9  # 3.8 s since start, 1.9 s since the last frame: not yet
    assert not event.wait(0.3)
    clock.t += 0.2
    assert event.wait(CAP_S)
    deadman.lost("late")
    assert fired == ["no frame from the controller for 2 s"] and deadman.fired


def test_a_loss_fires_at_once_and_bye_disarms() -> None:
    clock = FakeClock()
    deadman, fired, event = switch(clock)
    deadman.lost("the controller's channel reached end of file")
    assert event.wait(CAP_S)
    assert fired == ["the controller's channel reached end of file"]

    quiet, never, event2 = switch(clock)
    quiet.disarm()
    clock.t += 100
    quiet.lost("end of file after bye")
    assert not event2.wait(0.3)
    assert never == [] and not quiet.fired


SCRIPTS = {
    "garbage": "import os, time; os.write(1, b'\\x00\\x00\\x00\\x05[1,2]'); time.sleep(30)",
    "too long": "import os, time; os.write(1, b'\\xff\\xff\\xff\\xff'); time.sleep(30)",
}


@pytest.mark.parametrize("what", sorted(SCRIPTS))
def test_a_bad_frame_from_the_agent_loses_the_channel_and_the_agent(what: str) -> None:
    client = AgentClient("h5", [sys.executable, "-c", SCRIPTS[what]], lambda _line: None)
    try:
        with pytest.raises(BackendError, match=r"^h5: the agent's channel (is|was) lost .*frame"):
            for _ in range(100):  # the reader reports the bad frame at once; the call after it fails
                client.call("time", timeout_s=CAP_S)
    finally:
        assert client.close() is not None
    assert client.process.returncode == -9  # killed: nothing it says can be trusted any more
