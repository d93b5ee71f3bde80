"""The control page's server (drills/control/web.py) on a fake exercise control: the token, the
body bound, each command routed, the event stream; and the real server (uvicorn in its thread)
started, streaming and stopped on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from control_fake import FakeControl
from starlette.testclient import TestClient

from drills.control.commands import MAX_REQUEST_BYTES
from drills.control.web import MAX_EVENT_STREAMS, ControlApp, WebServer
from drills.errors import BadInput

TOKEN = "t0ken-for-tests"


@pytest.fixture(name="control")
def control_fixture() -> FakeControl:
    return FakeControl()


@pytest.fixture(name="app")
def app_fixture(control: FakeControl) -> Iterator[ControlApp]:
    app = ControlApp(control, TOKEN)
    yield app
    app.shutdown()


@pytest.fixture(name="client")
def client_fixture(app: ControlApp) -> Iterator[TestClient]:
    with TestClient(app.app) as client:
        yield client


def post(client: TestClient, body: Any, **kw: Any) -> httpx.Response:
    return client.post("/command", content=json.dumps(body), headers={"X-Drills-Token": TOKEN}, **kw)


@pytest.mark.parametrize("path", ["/", "/events", "/state", "/?token=", "/?token=wrong", f"/?token={TOKEN}x"])
def test_without_the_token_every_page_is_forbidden(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 403
    assert "token" in response.text


def test_a_command_without_the_token_is_forbidden_and_never_reaches_the_drill(client: TestClient, control: FakeControl) -> None:
    assert client.post("/command", content=b'{"command": "hold"}').status_code == 403
    assert client.post("/command", content=b'{"command": "hold"}', headers={"X-Drills-Token": "nope"}).status_code == 403
    assert control.calls == []


def test_the_page_with_its_token(client: TestClient) -> None:
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Exercise control</title>" in response.text
    # Self-contained and never leaking the token: no external resource, no referrer, never framed.
    assert "http://" not in response.text and "https://" not in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


def test_the_state_with_its_token(client: TestClient) -> None:
    assert client.get(f"/state?token={TOKEN}").json()["title"] == "Fake exercise"
    assert client.get("/state", headers={"X-Drills-Token": TOKEN}).json()["version"] == 1


@pytest.mark.parametrize(
    ("body", "call"),
    [
        ({"command": "hold"}, ("hold", "page")),
        ({"command": "resume"}, ("resume", "page")),
        ({"command": "fire", "id": "cut-1"}, ("fire", "cut-1", "page")),
        ({"command": "skip", "id": "cut-1"}, ("skip", "cut-1", "page")),
        ({"command": "release", "id": "gate-2"}, ("release", "gate-2", "page")),
        ({"command": "observe", "text": "NOC rerouted", "objective": "O1.1"}, ("observe", "NOC rerouted", "O1.1", "page")),
        ({"command": "observe", "text": "no objective", "objective": None}, ("observe", "no objective", None, "page")),
        ({"command": "stop", "reason": "ENDEX"}, ("stop", "ENDEX", "page")),
    ],
)
def test_each_command_is_routed(client: TestClient, control: FakeControl, body: dict[str, Any], call: tuple[Any, ...]) -> None:
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": f"{body['command']} done"}
    assert control.calls == [call]


def test_the_token_may_come_in_the_query_of_a_post(client: TestClient, control: FakeControl) -> None:
    assert client.post(f"/command?token={TOKEN}", content=b'{"command": "hold"}').json()["ok"] is True
    assert control.calls == [("hold", "page")]


def test_a_refusal_is_the_controls_answer(client: TestClient, control: FakeControl) -> None:
    control.refuse = True
    assert post(client, {"command": "fire", "id": "x"}).json() == {"ok": False, "message": "fire refused"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"command": "dance"}, "command must be one of"),
        ({"id": "x"}, "command must be one of"),
        ({"command": "fire"}, "needs a non-empty string 'id'"),
        ({"command": "fire", "id": ""}, "needs a non-empty string 'id'"),
        ({"command": "fire", "id": 3}, "needs a non-empty string 'id'"),
        ({"command": "fire", "id": "x" * 129}, "at most 128 characters"),
        ({"command": "stop"}, "needs a non-empty string 'reason'"),
        ({"command": "observe", "text": "x", "objective": 5}, "objective is an id"),
        ({"command": "hold", "objective": "O1"}, "hold takes no 'objective'"),
        ({"command": "hold", "id": "x"}, "hold takes no 'id'"),
        (["hold"], "a JSON object is expected"),
    ],
)
def test_a_malformed_command_is_refused_before_the_drill(client: TestClient, control: FakeControl, body: Any, says: str) -> None:
    answer = post(client, body).json()
    assert answer["ok"] is False and says in answer["message"]
    assert control.calls == []


def test_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post("/command", content=b"hold\n", headers={"X-Drills-Token": TOKEN})
    assert response.status_code == 400
    assert "not JSON" in response.json()["message"]


def test_a_body_over_8_kib_is_refused_unread(client: TestClient, control: FakeControl) -> None:
    text = "x" * MAX_REQUEST_BYTES
    response = post(client, {"command": "observe", "text": text})
    assert response.status_code == 413
    assert control.calls == []


def test_a_chunked_body_over_8_kib_is_refused(client: TestClient, control: FakeControl) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what it reads
        yield b'{"command": "observe", "text": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/command", content=chunks(), headers={"X-Drills-Token": TOKEN})
    assert response.status_code == 413
    assert control.calls == []


def test_a_get_of_a_command_is_not_allowed(client: TestClient) -> None:
    assert client.get(f"/command?token={TOKEN}").status_code == 405


def test_the_event_stream_sends_the_state(app: ControlApp, client: TestClient, control: FakeControl) -> None:
    # The test client reads a response to its end: the stream ends after its first event here.
    real_state = control.state

    def state_then_close() -> dict[str, Any]:
        app.closing.set()
        return real_state()

    control.state = state_then_close  # type: ignore[method-assign]
    response = client.get(f"/events?token={TOKEN}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 1
    assert json.loads(events[0][len("data: ") :])["version"] == 1


def test_at_most_8_event_streams(app: ControlApp, client: TestClient) -> None:
    for _ in range(MAX_EVENT_STREAMS):
        assert app._streams.acquire(blocking=False)  # eight pages connected
    response = client.get(f"/events?token={TOKEN}")
    assert response.status_code == 503
    assert "at most 8" in response.text


# --------------------------------------------------------------------------- the real server


def test_the_server_streams_changes_and_stops(control: FakeControl) -> None:
    server = WebServer(control, "127.0.0.1", 0, token=TOKEN)
    server.start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/?token={TOKEN}"
        assert server.port > 0
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/", timeout=10).status_code == 403
        seen: list[int] = []
        with httpx.stream("GET", f"{base}/events?token={TOKEN}", timeout=10) as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:])["version"])
                    if len(seen) == 1:  # a command from another client: the stream sends the new state
                        answer = httpx.post(f"{base}/command", json={"command": "hold"}, headers={"X-Drills-Token": TOKEN}, timeout=10)
                        assert answer.json()["ok"] is True
                    else:
                        break
        assert seen == [1, 2]
    finally:
        server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=2)


def test_a_taken_port_is_bad_input(control: FakeControl) -> None:
    first = WebServer(control, "127.0.0.1", 0)
    try:
        with pytest.raises(BadInput, match=f"cannot listen on 127.0.0.1 port {first.port}"):
            WebServer(control, "127.0.0.1", first.port)
    finally:
        first.stop()


def test_a_bad_bind_address_is_bad_input(control: FakeControl) -> None:
    with pytest.raises(BadInput, match=r"--control-bind no\.such\.host\.invalid"):
        WebServer(control, "no.such.host.invalid", 0)


def test_the_real_control_before_the_drill_starts() -> None:
    """drills.engine.control.ExerciseControl behind the app before its clock starts: the state
    says deploying, a hold is refused, a stop is remembered (it ends the drill at its start)."""
    from drills.engine.control import ExerciseControl

    app = ControlApp(ExerciseControl(), TOKEN)
    try:
        with TestClient(app.app) as client:
            assert client.get(f"/state?token={TOKEN}").json()["phase"] == "deploying"
            refused = post(client, {"command": "hold"}).json()
            assert refused["ok"] is False and "not running" in refused["message"]
            remembered = post(client, {"command": "stop", "reason": "ENDEX"}).json()
            assert remembered["ok"] is True and "as soon as its clock starts" in remembered["message"]
            control_chars = post(client, {"command": "stop", "reason": "ENDEX\x1b[2J"}).json()
            assert control_chars == {"ok": False, "message": "text holds control characters"}
    finally:
        app.shutdown()
