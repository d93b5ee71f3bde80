"""Exercise control: the desk a control page and a terminal act through while a drill plays.

`ExerciseControl` is thread-safe. The page's and the socket's threads call its commands (hold,
resume, fire, skip, release, observe, stop); each is queued and carried out on the drill
clock's thread by the player (drills.engine.player), which answers it; the caller waits for
the answer at most `COMMAND_TIMEOUT_S`. `state()` builds a snapshot on the CALLER's thread from
what the player keeps, so a connected browser costs the clock's thread nothing but a version
bump per change. `wait_change` lets a page server push each change (Server-Sent Events).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

COMMAND_TIMEOUT_S = 10.0
MAX_QUEUED = 64  # commands waiting for the clock's thread; more is someone hammering the desk
MAX_SOURCE_CHARS = 64
MAX_TEXT_BYTES = 4096
COMMANDS = ("hold", "resume", "fire", "skip", "release", "observe", "stop")


@dataclass(frozen=True)
class Answer:
    """What a command did, or why it was refused (shown to the controller as is)."""

    ok: bool
    message: str


@dataclass
class Command:
    """One queued command; the player sets `answer` and `done`."""

    name: str
    argument: str
    source: str
    objective: str | None = None
    answer: Answer | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def reply(self, ok: bool, message: str) -> None:
        self.answer = Answer(ok, message)
        self.done.set()


class Desk(Protocol):
    """The player, as the control sees it."""

    def view(self) -> dict[str, Any]:
        """The state snapshot (drills.engine.player.Player.view), built on the caller's thread."""


class ExerciseControl:
    """The one object a control page, a control socket and the player share."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._version = 0
        self._queue: deque[Command] = deque()
        self._accepting = False
        self._phase = "deploying"
        self._desk: Desk | None = None
        self._final: dict[str, Any] | None = None
        self._early_stop: Command | None = None
        self._on_attach: list[Callable[[Path], None]] = []
        self._on_detach: list[Callable[[], None]] = []
        self.wake = threading.Event()  # set when a command is queued: the player's waits end on it

    # ------------------------------------------------------------------ the controllers' side

    def hold(self, source: str) -> Answer:
        return self._submit("hold", "", source)

    def resume(self, source: str) -> Answer:
        return self._submit("resume", "", source)

    def fire(self, inject_id: str, source: str) -> Answer:
        return self._submit("fire", inject_id, source)

    def skip(self, inject_id: str, source: str) -> Answer:
        return self._submit("skip", inject_id, source)

    def release(self, inject_id: str, source: str) -> Answer:
        return self._submit("release", inject_id, source)

    def observe(self, text: str, objective: str | None, source: str) -> Answer:
        return self._submit("observe", text, source, objective)

    def stop(self, reason: str, source: str) -> Answer:
        return self._submit("stop", reason, source)

    def command(self, name: str, argument: str, source: str, objective: str | None = None) -> Answer:
        """Any command by name (the socket's and the page's dispatch)."""
        if name not in COMMANDS:
            return Answer(False, f"unknown command '{name[:40]}'; one of {', '.join(COMMANDS)}")
        return self._submit(name, argument, source, objective)

    def state(self) -> dict[str, Any]:
        """The exercise now, JSON-able (see the shape in the README's "Exercise control")."""
        with self._lock:
            desk, final, version, phase = self._desk, self._final, self._version, self._phase
        if final is not None:
            snapshot = {**final, "phase": "over"}
        elif desk is not None:
            snapshot = desk.view()  # it says its own phase: running or held
        else:
            snapshot = {"phase": phase, "clock": None, "hold": None, "injects": [], "in_force": [], "probes": [], "holds": [], "observations": [], "log": [], "stop": None}
        snapshot["version"] = version
        return snapshot

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def wait_change(self, version: int, timeout_s: float) -> int:
        """Block until the state's version passes `version` or `timeout_s`; the version now."""
        with self._lock:
            self._lock.wait_for(lambda: self._version > version, timeout=max(0.0, min(timeout_s, 3600.0)))
            return self._version

    def on_attach(self, callback: Callable[[Path], None]) -> None:
        """`callback(run_dir)` once the drill's run directory exists (a control socket opens there)."""
        self._on_attach.append(callback)

    def on_detach(self, callback: Callable[[], None]) -> None:
        """`callback()` before the run directory is torn down."""
        self._on_detach.append(callback)

    # ------------------------------------------------------------------ the drill's side

    def attach(self, run_dir: Path) -> None:
        for callback in self._on_attach:
            callback(run_dir)

    def detach(self) -> None:
        for callback in self._on_detach:
            callback()

    def start(self, desk: Desk) -> Command | None:
        """The timeline starts: commands go to `desk` from now on. Returns a stop given before
        the clock started (the player obeys it at once)."""
        with self._lock:
            self._desk, self._accepting, self._phase = desk, True, "running"
            early, self._early_stop = self._early_stop, None
        self.changed()
        return early

    def take(self) -> list[Command]:
        """The commands queued so far (the player's thread)."""
        with self._lock:
            self.wake.clear()
            taken = list(self._queue)
            self._queue.clear()
            return taken

    def changed(self, phase: str | None = None) -> None:
        """Something the state shows changed: wake whoever waits for it."""
        with self._lock:
            if phase is not None:
                self._phase = phase
            self._version += 1
            self._lock.notify_all()

    def finish(self, final: dict[str, Any] | None) -> None:
        """The timeline is over: refuse what is still queued, keep the last state."""
        with self._lock:
            self._accepting = False
            if final is not None:
                self._final = final
            elif self._final is None and self._desk is not None:  # ended by an error: what it showed last
                self._final = self._desk.view()
            self._desk = None
            self._phase = "over"
            left = list(self._queue)
            self._queue.clear()
        for command in left:
            command.reply(False, "the drill's timeline is over")
        self.changed()

    # ------------------------------------------------------------------ internals

    def _submit(self, name: str, argument: str, source: str, objective: str | None = None) -> Answer:
        problem = _check_text("source", source, MAX_SOURCE_CHARS) or _check_text("text", argument, MAX_TEXT_BYTES)
        if objective is not None:
            problem = problem or _check_text("objective", objective, MAX_SOURCE_CHARS)
        if problem is not None:
            return Answer(False, problem)
        if name in ("fire", "skip", "release") and not argument:
            return Answer(False, f"{name} needs an inject id")
        if name in ("observe", "stop") and not argument.strip():
            return Answer(False, "observe needs a text" if name == "observe" else "stop needs a reason (ENDEX, real-world emergency)")
        command = Command(name, argument, source, objective)
        with self._lock:
            if not self._accepting:
                if name == "stop" and self._phase == "deploying":
                    self._early_stop = command
                    return Answer(True, "the drill stops as soon as its clock starts (the testbed is still deploying)")
                return Answer(False, f"the drill's timeline is not running ({self._phase})")
            if len(self._queue) >= MAX_QUEUED:
                return Answer(False, "too many commands are waiting; try again in a moment")
            self._queue.append(command)
            self.wake.set()
        if not command.done.wait(COMMAND_TIMEOUT_S):
            return Answer(False, f"timed out: the drill did not answer within {COMMAND_TIMEOUT_S:g} s")
        assert command.answer is not None
        return command.answer


def _check_text(what: str, text: str, limit: int) -> str | None:
    if not isinstance(text, str):
        return f"{what} must be text"
    if len(text.encode("utf-8", "replace")) > limit:
        return f"{what} is longer than {limit} bytes"
    if any((ord(c) < 32 and c not in "\t\n") or 127 <= ord(c) < 160 for c in text):
        return f"{what} holds control characters"
    return None
