"""The agent's dead-man switch: a controller that is gone (its channel at end of file, or silent
for `DEADMAN_S` while heartbeats are due every `HEARTBEAT_S`) gets its host's part torn down.

Bound, from the loss to the agent's exit: end of file is seen at once, silence after at most
`window_s` + `POLL_S`; then the agent waits at most `BUSY_WAIT_S` for a request in progress
(a deploy in progress: until it ends, at most `DEPLOY_WAIT_S`, since tearing down under it
would miss what it creates next), stops its probes and tears its part down (processes: TERM,
KILL after the 2 s grace of drills.netns.services; then its namespaces, which take every link,
address, qdisc and rule with them). With no service ignoring TERM that is well under a second
(bench/agent.py: 0.17 s for a 2-node part after its pipes close): gone within 5 s of the loss,
2 s of silence included, outside a deploy, is the stated bound; tests/test_remote_agent.py
checks it with a 10 s cap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from drills.clock import Clock

POLL_S = 0.1
BUSY_WAIT_S = 0.5  # a request still running when the loss is seen
DEPLOY_WAIT_S = 120.0  # a deploy still running: a 300-node part takes seconds, not minutes


class DeadMan:
    """Calls `on_loss(reason)` once, in its own thread, when the channel is lost: `lost()` was
    called (end of file, a bad frame, a signal) or `heard()` was not called for `window_s`."""

    def __init__(self, window_s: float, on_loss: Callable[[str], None], clock: Clock) -> None:
        self.window_s = window_s
        self._on_loss = on_loss
        self._clock = clock
        self._last_s = clock.now_s()
        self._reason: str | None = None
        self._wake = threading.Event()
        self._disarmed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="deadman", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def heard(self) -> None:
        """A frame arrived (a float assignment: atomic, no lock on the hot path)."""
        self._last_s = self._clock.now_s()

    def lost(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
        self._wake.set()

    def disarm(self) -> None:
        """An orderly end (`bye`): nothing to do on end of file any more."""
        self._disarmed.set()
        self._wake.set()

    @property
    def fired(self) -> bool:
        return self._reason is not None and not self._disarmed.is_set()

    def _watch(self) -> None:
        while not self._disarmed.is_set():
            if self._reason is None and self._clock.now_s() - self._last_s > self.window_s:
                self._reason = f"no frame from the controller for {self.window_s:g} s"
            if self._reason is not None:
                self._on_loss(self._reason)
                return
            self._wake.wait(POLL_S)
            self._wake.clear()
