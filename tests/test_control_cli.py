"""`drill control RUN ...` and the `--control` options of `drill run`, without a drill: the
terminal's requests reach a control socket served on a fake control in a real run directory."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_fake import FakeControl

from drills.cli import main
from drills.control.session import request_for
from drills.control.socket_server import ControlSocket
from drills.errors import BadInput
from drills.runs import RunStore


@pytest.fixture(name="run_id")
def run_id_fixture(state_dir: Path) -> Iterator[str]:
    run = RunStore(state_dir).create("exercise", Path("exercise.yaml"))
    yield run.run_id
    run.unlock()


@pytest.fixture(name="control")
def control_fixture(state_dir: Path, run_id: str) -> Iterator[FakeControl]:
    control = FakeControl()
    server = ControlSocket(control, allowed_uid=os.getuid())
    server.open(state_dir / "runs" / run_id)
    yield control
    server.close()


def drill(state_dir: Path, *args: str) -> int:
    return main(["--state-dir", str(state_dir), *args])


@pytest.mark.parametrize(
    ("args", "request_"),
    [
        (("hold", None, None), {"command": "hold"}),
        (("fire", "cut-1", None), {"command": "fire", "id": "cut-1"}),
        (("release", "gate", None), {"command": "release", "id": "gate"}),
        (("observe", "NOC rerouted", "O1.1"), {"command": "observe", "text": "NOC rerouted", "objective": "O1.1"}),
        (("stop", "ENDEX", None), {"command": "stop", "reason": "ENDEX"}),
        (("state", None, None), {"command": "state"}),
    ],
)
def test_the_request_of_each_action(args: tuple[str, str | None, str | None], request_: dict[str, str]) -> None:
    assert request_for(*args) == request_


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("dance", None, None), "unknown action 'dance'"),
        (("fire", None, None), "fire needs its inject id"),
        (("stop", " ", None), "stop needs its reason"),
        (("hold", "now", None), "hold takes no argument"),
        (("stop", "ENDEX", "O1"), "--objective goes with observe only"),
    ],
)
def test_bad_actions_are_bad_input(args: tuple[str, str | None, str | None], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        request_for(*args)


def test_a_command_from_the_terminal(state_dir: Path, run_id: str, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    assert drill(state_dir, "control", run_id, "fire", "cut-1") == 0
    assert drill(state_dir, "control", run_id, "observe", "seen", "--objective", "O1") == 0
    assert control.calls == [("fire", "cut-1", "terminal"), ("observe", "seen", "O1", "terminal")]
    assert "fire done" in capsys.readouterr().out


def test_a_refused_command_exits_1(state_dir: Path, run_id: str, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    control.refuse = True
    assert drill(state_dir, "control", run_id, "hold") == 1
    assert "hold refused" in capsys.readouterr().out


def test_state_prints_json(state_dir: Path, run_id: str, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    assert drill(state_dir, "control", run_id, "state") == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Fake exercise"


def test_a_run_without_a_socket(state_dir: Path, run_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert drill(state_dir, "control", run_id, "hold") == 2
    assert f"run {run_id} has no control socket: was it started with `drill run --control`?" in capsys.readouterr().err


def test_no_such_run(state_dir: Path, run_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    other = "abcdef" if run_id != "abcdef" else "fedcba"
    assert drill(state_dir, "control", other, "hold") == 2
    assert f"no run '{other}' (runs: {run_id})" in capsys.readouterr().err


def test_bad_input_of_the_terminal_exits_2(state_dir: Path, run_id: str, control: FakeControl) -> None:
    assert drill(state_dir, "control", run_id, "fire") == 2
    assert control.calls == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--control", "--trials", "2"), "--control runs one exercise under a controller: drop --trials"),
        (("--control-port", "8080"), "--control-port and --control-bind go with --control"),
        (("--control-bind", "0.0.0.0"), "--control-port and --control-bind go with --control"),
    ],
)
def test_control_options_of_drill_run(tmp_path: Path, state_dir: Path, args: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert drill(state_dir, "run", str(tmp_path / "any.yaml"), *args) == 2
    assert says in capsys.readouterr().err
