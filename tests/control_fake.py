"""A fake exercise control for the control page's and socket's unit tests: the methods of
drills.engine.control.ExerciseControl, recording each call and answering as told. Not a conftest:
the control tests import it (`from control_fake import FakeControl`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: str


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = False  # answer every command with a refusal
        self.version = 1
        self.attach: list[Callable[[Path], None]] = []
        self.detach: list[Callable[[], None]] = []
        self._changed = threading.Condition()

    def _answer(self, *call: Any) -> Answer:
        self.calls.append(call)
        if self.refuse:
            return Answer(False, f"{call[0]} refused")
        self.bump()
        return Answer(True, f"{call[0]} done")

    def bump(self) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def hold(self, source: str) -> Answer:
        return self._answer("hold", source)

    def resume(self, source: str) -> Answer:
        return self._answer("resume", source)

    def fire(self, inject_id: str, source: str) -> Answer:
        return self._answer("fire", inject_id, source)

    def skip(self, inject_id: str, source: str) -> Answer:
        return self._answer("skip", inject_id, source)

    def release(self, inject_id: str, source: str) -> Answer:
        return self._answer("release", inject_id, source)

    def observe(self, text: str, objective: str | None, source: str) -> Answer:
        return self._answer("observe", text, objective, source)

    def stop(self, reason: str, source: str) -> Answer:
        return self._answer("stop", reason, source)

    def state(self) -> dict[str, Any]:
        return {
            "version": self.version, "phase": "running", "scenario": "fake", "run_id": "r1", "title": "Fake exercise",
            "clock": {"drill_s": 12.0, "exercise_s": 10.0, "held_s": 2.0, "scenario_time": "2026-03-11T09:30:10",
                      "duration_s": 60.0, "started_at": "2026-12-04T03:40:00Z"},
            "hold": None, "injects": [], "in_force": [], "probes": [], "holds": [], "observations": [], "stop": None,
            "log": [],
        }  # fmt: skip

    def wait_change(self, version: int, timeout_s: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.version > version, timeout=timeout_s)
            return self.version

    def on_attach(self, callback: Callable[[Path], None]) -> None:
        self.attach.append(callback)

    def on_detach(self, callback: Callable[[], None]) -> None:
        self.detach.append(callback)
