"""The controller's commands, one door for the page and the terminal: a request (a JSON object)
checked and routed to the exercise's control, the answer as a JSON object.

The control itself (drills.engine.control.ExerciseControl) checks what it is asked against the
exercise (no such inject, already delivered, text too long); this module checks only the shape
of a request, so a hostile client gets a clear refusal before anything reaches the drill.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MAX_REQUEST_BYTES = 8 * 1024  # one request: a command, an id, a text of at most 4 KiB
MAX_ID_CHARS = 128

# Command name -> the request fields it needs (besides "command"), in order.
COMMANDS: dict[str, tuple[str, ...]] = {
    "state": (),
    "hold": (),
    "resume": (),
    "fire": ("id",),
    "skip": ("id",),
    "release": ("id",),
    "observe": ("text",),  # and an optional "objective"
    "stop": ("reason",),
}


class AnswerLike(Protocol):
    """What every command of the control answers (drills.engine.control.Answer)."""

    @property
    def ok(self) -> bool: ...

    @property
    def message(self) -> str: ...


class Control(Protocol):
    """The part of drills.engine.control.ExerciseControl the servers use (the unit tests give a
    fake with the same methods)."""

    def hold(self, source: str) -> AnswerLike: ...
    def resume(self, source: str) -> AnswerLike: ...
    def fire(self, inject_id: str, source: str) -> AnswerLike: ...
    def skip(self, inject_id: str, source: str) -> AnswerLike: ...
    def release(self, inject_id: str, source: str) -> AnswerLike: ...
    def observe(self, text: str, objective: str | None, source: str) -> AnswerLike: ...
    def stop(self, reason: str, source: str) -> AnswerLike: ...
    def state(self) -> dict[str, Any]: ...
    def wait_change(self, version: int, timeout_s: float) -> int: ...
    def on_attach(self, callback: Callable[[Any], None]) -> None: ...
    def on_detach(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Refused:
    """A request refused for its shape (never reached the control)."""

    message: str
    ok: bool = False


def answer_json(answer: AnswerLike) -> dict[str, Any]:
    return {"ok": bool(answer.ok), "message": str(answer.message)}


def parse_request(raw: bytes) -> dict[str, Any] | Refused:
    """A request's bytes as a JSON object, or why not."""
    if len(raw) > MAX_REQUEST_BYTES:
        return Refused(f"request too large: at most {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Refused(f"bad request: not JSON ({exc.__class__.__name__}: {exc})"[:300])
    if not isinstance(data, dict):
        return Refused('bad request: a JSON object is expected, e.g. {"command": "hold"}')
    return data


def _field(request: dict[str, Any], name: str) -> str | Refused:
    value = request.get(name)
    if not isinstance(value, str) or not value.strip():
        return Refused(f"bad request: {request.get('command')} needs a non-empty string {name!r}")
    if name == "id" and len(value) > MAX_ID_CHARS:
        return Refused(f"bad request: an inject id has at most {MAX_ID_CHARS} characters")
    return value


def execute(control: Control, request: dict[str, Any], source: str) -> dict[str, Any]:
    """Run one checked request on the control; the answer ({"ok", "message"}) or, for "state",
    the control's state."""
    command = request.get("command")
    if not isinstance(command, str) or command not in COMMANDS:
        return answer_json(Refused(f"bad request: command must be one of {', '.join(COMMANDS)}"))
    optional = {"objective"} if command == "observe" else set()
    unknown = sorted(set(request) - {"command", *COMMANDS[command], *optional})
    if unknown:
        return answer_json(Refused(f"bad request: {command} takes no {', '.join(map(repr, unknown))}"))
    if command == "state":
        return control.state()
    values: list[str] = []
    for name in COMMANDS[command]:
        value = _field(request, name)
        if isinstance(value, Refused):
            return answer_json(value)
        values.append(value)
    if command == "observe":
        objective = request.get("objective")
        if objective is not None and (not isinstance(objective, str) or len(objective) > MAX_ID_CHARS):
            return answer_json(Refused(f"bad request: objective is an id of at most {MAX_ID_CHARS} characters"))
        return answer_json(control.observe(values[0], objective or None, source))
    if command in ("hold", "resume"):
        return answer_json(getattr(control, command)(source))
    return answer_json(getattr(control, command)(values[0], source))
