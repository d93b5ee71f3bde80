"""`drill run --control`: the page and the socket served on one exercise control for the length
of a drill, and `drill control RUN ...`: a terminal's request to a running drill's socket."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

from drills.control.commands import Control
from drills.control.socket_server import SOCKET_NAME, ControlSocket, ask
from drills.errors import BadInput, ExitCode
from drills.runs import RunStore
from drills.textsafe import visible

EXIT_REFUSED = 1  # `drill control`: the exercise's control refused the command
ACTIONS = ("hold", "resume", "fire", "skip", "release", "observe", "stop", "state")
_ARGUMENT = {"fire": "id", "skip": "id", "release": "id", "observe": "text", "stop": "reason"}


def _loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


class ControlSession:
    """The page's server and the control socket on `control`, from `with` to its end: the page
    listens at once (its URL is logged), the socket opens when the drill's run directory exists
    (the control's on_attach) and goes before it is torn down (on_detach)."""

    def __init__(self, control: Control, bind: str, port: int, log: Callable[[str], None]) -> None:
        from drills.control.web import WebServer  # Starlette and uvicorn: loaded only with --control

        self.web = WebServer(control, bind, port)
        self.socket = ControlSocket(control)
        self.log = log
        self.bind = bind

    def __enter__(self) -> ControlSession:
        self.web.start()
        self.socket.attach()
        self.log(f"control page: {self.web.url}")
        if not _loopback(self.bind):
            self.log(f"the control page listens on {self.bind}: anyone who reaches it with the token controls the exercise")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.socket.close()  # already closed by on_detach unless the drill never got a run directory
        finally:
            self.web.stop()


def controlled(
    control: bool, trials: int, port: int | None, bind: str | None, log: Callable[[str], None]
) -> AbstractContextManager[Any]:
    """`drill run`'s control options checked: with `--control` the session that serves the
    control while the drill runs (`with` gives the control), else nothing (None)."""
    if control and trials > 1:
        raise BadInput("--control runs one exercise under a controller: drop --trials")
    if not control:
        if port is not None or bind is not None:
            raise BadInput("--control-port and --control-bind go with --control")
        return nullcontext(None)
    return served(bind, port, log)


@contextmanager
def served(bind: str | None, port: int | None, log: Callable[[str], None]) -> Iterator[Any]:
    """`drill run --control`: a new exercise control, its page and socket served while the
    drill (the `with` body, given the control) runs."""
    from drills.engine.control import ExerciseControl

    control = ExerciseControl()
    with ControlSession(control, bind or "127.0.0.1", port or 0, log):
        yield control


def request_for(action: str, argument: str | None, objective: str | None) -> dict[str, Any]:
    """The socket request of `drill control RUN ACTION [ARGUMENT] [--objective O]`."""
    if action not in ACTIONS:
        raise BadInput(f"drill control: unknown action {action!r}; one of {', '.join(ACTIONS)}")
    field = _ARGUMENT.get(action)
    if field is None and argument is not None:
        raise BadInput(f"drill control: {action} takes no argument (got {argument!r})")
    if field is not None and not (argument or "").strip():
        raise BadInput(f"drill control: {action} needs its {'inject id' if field == 'id' else field}: drill control RUN {action} {field.upper()}")
    if objective is not None and action != "observe":
        raise BadInput("drill control: --objective goes with observe only")
    request: dict[str, Any] = {"command": action}
    if field is not None:
        request[field] = argument
    if objective is not None:
        request["objective"] = objective
    return request


def socket_of(state_dir: Path, run_id: str) -> Path:
    """The control socket of a run as `drill ls` names it; BadInput when it has none."""
    path = RunStore(state_dir).get(run_id).dir / SOCKET_NAME
    if not path.is_socket():
        raise BadInput(f"run {run_id} has no control socket: was it started with `drill run --control`?")
    return path


def terminal(state_dir: Path, run_id: str, action: str, argument: str | None, objective: str | None) -> tuple[int, str]:
    """`drill control RUN ACTION ...`: (exit code, what to print): the state as JSON, or the
    control's answer (exit 0 when done, 1 when refused)."""
    answer = ask(socket_of(state_dir, run_id), request_for(action, argument, objective))
    if action == "state":
        return ExitCode.OK, json.dumps(answer, indent=2)
    text = visible(str(answer.get("message", "")))
    return (ExitCode.OK if answer.get("ok") is True else EXIT_REFUSED), text
