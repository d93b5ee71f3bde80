"""The control socket (drills/control/socket_server.py) on a fake exercise control: opened and
removed through the control's attach/detach, its mode, the line protocol and its bounds, the
peer check, and `ask` (drill control's client)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_fake import FakeControl

from drills.control import socket_server
from drills.control.commands import MAX_REQUEST_BYTES
from drills.control.socket_server import MAX_CONNECTIONS, SOCKET_NAME, ControlSocket, ask
from drills.errors import BadInput


@pytest.fixture(name="control")
def control_fixture() -> FakeControl:
    return FakeControl()


@pytest.fixture(name="served")
def served_fixture(control: FakeControl, tmp_path: Path) -> Iterator[Path]:
    server = ControlSocket(control, allowed_uid=os.getuid())
    server.attach()
    (opened,) = control.attach
    opened(tmp_path)
    yield tmp_path / SOCKET_NAME
    (closed,) = control.detach
    closed()


def raw(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        # A server that turns the connection away answers and closes before reading it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sendall(data)
        received = b""
        while not received.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
    answer = json.loads(received)
    assert isinstance(answer, dict)
    return answer


def test_the_socket_is_private_and_goes_with_the_run(control: FakeControl, tmp_path: Path) -> None:
    server = ControlSocket(control)
    server.attach()
    control.attach[0](tmp_path)
    path = tmp_path / SOCKET_NAME
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    control.detach[0]()
    assert not path.exists()
    with pytest.raises(BadInput, match="nobody answers"):
        ask(path, {"command": "hold"})


def test_each_command_is_routed_from_the_terminal(served: Path, control: FakeControl) -> None:
    assert ask(served, {"command": "hold"}) == {"ok": True, "message": "hold done"}
    assert ask(served, {"command": "fire", "id": "cut-1"})["ok"] is True
    assert ask(served, {"command": "observe", "text": "seen", "objective": "O1"})["ok"] is True
    assert ask(served, {"command": "stop", "reason": "real-world emergency"})["ok"] is True
    assert control.calls == [
        ("hold", "terminal"), ("fire", "cut-1", "terminal"), ("observe", "seen", "O1", "terminal"),
        ("stop", "real-world emergency", "terminal"),
    ]  # fmt: skip


def test_state_answers_the_state(served: Path) -> None:
    assert ask(served, {"command": "state"})["title"] == "Fake exercise"


def test_a_refusal_is_passed_on(served: Path, control: FakeControl) -> None:
    control.refuse = True
    assert ask(served, {"command": "skip", "id": "x"}) == {"ok": False, "message": "skip refused"}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"hold\n", "not JSON"),
        (b"\xff\xfe\n", "not JSON"),
        (b"[1, 2]\n", "a JSON object is expected"),
        (b'{"command": "fire"}\n', "needs a non-empty string 'id'"),
        (b'{"command": "format-disk"}\n', "command must be one of"),
        (b"x" * (MAX_REQUEST_BYTES + 1) + b"\n", "request too large"),
        (b"x" * (MAX_REQUEST_BYTES + 5000), "request too large"),  # no newline at all
    ],
)
def test_bad_requests_are_refused(served: Path, control: FakeControl, data: bytes, says: str) -> None:
    answer = raw(served, data)
    assert answer["ok"] is False and says in answer["message"]
    assert control.calls == []


def test_a_request_at_the_bound_is_read(served: Path, control: FakeControl) -> None:
    prefix, suffix = b'{"command": "observe", "text": "', b'"}'
    line = prefix + b"x" * (MAX_REQUEST_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(line) == MAX_REQUEST_BYTES
    assert raw(served, line + b"\n")["ok"] is True


def test_a_slow_client_is_timed_out(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket_server, "READ_TIMEOUT_S", 0.2)  # read at connection time by the server
    answer = raw(served, b'{"command": "hold"')  # never the newline
    assert answer["ok"] is False and "timed out" in answer["message"]


def test_a_fifth_connection_is_turned_away(served: Path) -> None:
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):  # four clients that say nothing (yet): every slot taken
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(served))
            held.append(client)
        # A slot is taken when the server accepts: the fifth is answered once the four are accepted.
        answer = raw(served, b'{"command": "hold"}\n')
        assert answer == {"ok": False, "message": f"busy: at most {MAX_CONNECTIONS} connections at once"}
    finally:
        for client in held:
            client.close()


def test_a_peer_that_is_not_the_allowed_uid_is_refused(control: FakeControl, tmp_path: Path) -> None:
    server = ControlSocket(control, allowed_uid=os.getuid() + 12345)  # not us: as another user would be
    server.open(tmp_path)
    try:
        answer = raw(tmp_path / SOCKET_NAME, b'{"command": "stop", "reason": "x"}\n')
    finally:
        server.close()
    assert answer == {"ok": False, "message": "refused: only root may control the exercise"}
    assert control.calls == []


def test_a_stale_socket_is_replaced(control: FakeControl, tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / SOCKET_NAME))
    stale.close()  # the file stays, as after a crash
    server = ControlSocket(control, allowed_uid=os.getuid())
    server.open(tmp_path)
    try:
        assert ask(tmp_path / SOCKET_NAME, {"command": "hold"})["ok"] is True
    finally:
        server.close()
