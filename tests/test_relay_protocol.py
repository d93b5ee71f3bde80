"""The relay's control channel without a relay: the protocol as a pure function (hypothesis),
the control server's bounds over real unix sockets in this process, the control directory's
checks, and the delay line's bound. No namespace, no timing: every outcome is deterministic
(hypothesis runs derandomized, so a CI run replays the same examples)."""

from __future__ import annotations

import json
import math
import os
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_testing import EACCES_STATUS, NOBODY, REFUSED_STATUS, connect_as_nobody

from drills.errors import BackendError
from drills.userspace import control, protocol, server
from drills.userspace.impair import DELAY_LINE_LIMIT_PACKETS, Direction, Impairments
from drills.userspace.server import ControlServer

FUZZ = settings(derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class FakeRelay:
    """A stand-in for the relay: keeps what `set` put in force."""

    def __init__(self) -> None:
        self.params = {name: Impairments() for name in protocol.DIRECTIONS}

    def set_params(self, direction: str, params: Impairments) -> dict[str, Any]:
        self.params[direction] = params
        return {direction: params.to_wire()}

    def state(self) -> dict[str, Any]:
        return {"params": {name: p.to_wire() for name, p in self.params.items()}, "padding": "x" * 1000}

    def stats(self) -> dict[str, Any]:
        return {"counters": {}}


def _reply(line: bytes, relay: FakeRelay | None = None) -> dict[str, Any]:
    out = protocol.answer(line, relay or FakeRelay())
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    reply: dict[str, Any] = json.loads(out)
    assert isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and 0 < len(reply["error"]) < 400
    return reply


def _in_range(wire: dict[str, Any]) -> None:
    """What a relay accepted is finite and within the protocol's bounds."""
    for name, value in wire.items():
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, (name, value)
            assert value <= (protocol.MAX_DELAY_S if name.endswith("_s") else 100.0), (name, value)
    rate = wire["rate_bps"]
    assert rate is None or (type(rate) is int and 1 <= rate <= protocol.MAX_RATE_BPS)


# --------------------------------------------------------------------------- the protocol, pure


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_get_a_well_formed_reply(line: bytes) -> None:
    _reply(line.replace(b"\n", b""))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from([*Impairments.__dataclass_fields__, "bogus"])


@FUZZ
@given(
    st.sampled_from(["set", "get", "stats", "nope", 3]),
    st.sampled_from([*protocol.DIRECTIONS, "c-to-d", None]),
    st.dictionaries(FIELDS, JSON, max_size=6) | JSON,
)
def test_any_json_request_is_answered_and_only_valid_parameters_go_into_force(
    op: object, direction: object, params: object
) -> None:
    relay = FakeRelay()
    line = json.dumps({"op": op, "direction": direction, "params": params}).encode()
    reply = _reply(line, relay)
    if reply["ok"]:
        assert op == "set" and isinstance(direction, str)
        _in_range(reply["params"][direction])
        assert relay.params[direction].to_wire() == reply["params"][direction]
    else:
        assert relay.params == FakeRelay().params  # a refused request changed nothing


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "a request is a JSON object, not list"),
        (b'{"op": "dance"}', "unknown op 'dance'"),
        (b'{"op": "get", "x": 1}', "unknown keys in the get request: 'x'"),
        (b'{"op": "set", "direction": "a-to-b"}', "the set request lacks params"),
        (b'{"op": "set", "direction": "up", "params": {}}', "unknown direction 'up'"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"delay_s": NaN}}', "NaN is not a number the relay accepts"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"delay_s": -Infinity}}', "-Infinity is not a number"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"delay_s": 1e400}}', "delay_s must be from 0 to 604800"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"delay_s": -0.001}}', "delay_s must be from 0 to 604800"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"loss_pct": 100.5}}', "loss_pct must be from 0 to 100"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"loss_pct": true}}', "loss_pct must be a number, not bool"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"loss_pct": "5"}}', "loss_pct must be a number, not str"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"rate_bps": 0}}', "rate_bps must be an integer from 1"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"rate_bps": 1.5}}', "rate_bps must be an integer from 1"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"rate_bps": 1' + b"0" * 30 + b"}}", "rate_bps must be"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"delay_s": 1' + b"0" * 5000 + b"}}", "not JSON"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"distribution": "zipf"}}', "distribution 'zipf' is not"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"warp": 9}}', "unknown keys in the params: 'warp'"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"loss_bursts": {"p_pct": 1}}}', "loss_bursts lacks r_pct"),
        (b'{"op": "set", "direction": "a-to-b", "params": {"loss_bursts": [1]}}', "loss_bursts must be a JSON object"),
        (b"[" * 60_000, "nested too deeply"),
        (b" " * protocol.MAX_MESSAGE_BYTES, f"request over {protocol.MAX_MESSAGE_BYTES} bytes"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(line: bytes, error: str) -> None:
    reply = _reply(line)
    assert not reply["ok"]
    assert error in reply["error"]


def test_a_valid_set_is_read_back() -> None:
    wire = Impairments(delay_s=0.1, jitter_s=0.01, distribution="normal", loss_pct=1, rate_bps=10**6).to_wire()
    wire["loss_bursts"] = {"p_pct": 1.0, "r_pct": 50.0, "bad_loss_pct": 100.0, "good_loss_pct": 0.0}
    reply = _reply(json.dumps({"op": "set", "direction": "b-to-a", "params": wire}).encode())
    assert reply == {"ok": True, "params": {"b-to-a": wire}}


# --------------------------------------------------------------------------- the control directory


def test_the_control_directory_is_root_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        directory = control.make_control_dir(tmp_path)
    finally:
        os.umask(old)
    assert directory == tmp_path / "relay"
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_symlinked_or_foreign_control_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "relay").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BackendError, match="relay control directory"):
        control.make_control_dir(tmp_path)
    if os.geteuid() == 0:
        other = tmp_path / "other"
        (other / "relay").mkdir(parents=True, mode=0o700)
        os.chown(other / "relay", NOBODY, NOBODY)
        with pytest.raises(BackendError, match="owned by uid 65534 with mode 700; it must be ours"):
            control.make_control_dir(other)


def test_a_long_run_directory_still_holds_a_socket(tmp_path: Path) -> None:
    """sun_path holds 108 bytes; the socket is bound through the directory's descriptor."""
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    path = control.socket_path(deep, "a link/with odd name")
    assert path.name.startswith("link-") and len(str(path)) > 400
    control.make_control_dir(deep)
    with control.listen(path) as listener:
        ControlServer(listener, FakeRelay())
        assert path.exists()


# --------------------------------------------------------------------------- the control server


class Bench:
    """A ControlServer on a real socket, pumped by hand as the relay's loop would."""

    def __init__(self, directory: Path) -> None:
        control.make_control_dir(directory)
        self.path = control.socket_path(directory, "wire")
        self.server = ControlServer(control.listen(self.path), FakeRelay())

    def pump(self, rounds: int = 20) -> None:
        s = self.server
        for _ in range(rounds):
            readers, writers, _ = select.select(s.readers(), s.writers(), [], 0.0 if s.busy() else 0.01)
            for fd in readers:
                s.readable(fd)
            for fd in writers:
                s.writable(fd)
            s.answer_pending()

    def client(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.path))
        sock.settimeout(5.0)  # a failure, not a hang, if the server never answers
        return sock

    def ask(self, sock: socket.socket, request: bytes) -> dict[str, Any]:
        sock.sendall(request + b"\n")
        return self.read_line(sock)

    def read_line(self, sock: socket.socket) -> dict[str, Any]:
        data = b""
        while not data.endswith(b"\n"):
            self.pump(1)
            sock.setblocking(False)
            try:
                chunk = sock.recv(65_536)
            except BlockingIOError:
                continue
            finally:
                sock.settimeout(5.0)
            assert chunk, f"closed before a reply (got {data!r})"
            data += chunk
        reply: dict[str, Any] = json.loads(data)
        return reply

    def closed(self, sock: socket.socket) -> bytes:
        """Everything the server still sends before closing `sock` (asserts it does close)."""
        data = b""
        for _ in range(500):
            self.pump(1)
            ready, _, _ = select.select([sock], [], [], 0.01)
            if ready:
                try:
                    chunk = sock.recv(1 << 20)
                except ConnectionResetError:
                    return data
                if not chunk:
                    return data
                data += chunk
        raise AssertionError("the server kept the connection open")


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.server.close()


def test_connections_beyond_the_bound_are_refused_and_the_others_served(bench: Bench) -> None:
    clients = [bench.client() for _ in range(control.MAX_CONNECTIONS)]
    bench.pump()
    extra = bench.client()
    refused = json.loads(bench.closed(extra))
    assert refused == {"ok": False, "error": f"{control.MAX_CONNECTIONS} control clients already connected"}
    assert bench.server.counters.refused_full == 1
    for sock in clients:
        assert bench.ask(sock, b'{"op": "stats"}') == {"ok": True, "counters": {}}
        sock.close()
    bench.pump()
    again = bench.client()
    assert bench.ask(again, b'{"op": "stats"}')["ok"]
    again.close()


def test_an_oversized_request_drops_its_client(bench: Bench) -> None:
    sock = bench.client()
    sock.setblocking(False)
    sent = 0
    while sent <= protocol.MAX_MESSAGE_BYTES:
        try:
            sent += sock.send(b"x" * 4096)
        except BlockingIOError:
            bench.pump(1)
    tail = bench.closed(sock)
    assert b"request over 65536 bytes: connection closed" in tail
    assert bench.server.counters.dropped == 1


def test_a_burst_of_malformed_requests_is_answered_line_by_line(bench: Bench) -> None:
    sock = bench.client()
    junk = [b"{", b"null", b'{"op":"set","direction":"a-to-b","params":{"delay_s":NaN}}', b"\x00\xff", b'{"op":1}']
    sock.sendall(b"\n".join(junk * 20) + b"\n")
    data = b""
    while data.count(b"\n") < len(junk) * 20:
        bench.pump(1)
        ready, _, _ = select.select([sock], [], [], 0.01)
        if ready:
            data += sock.recv(1 << 20)
    replies = [json.loads(line) for line in data.splitlines()]
    assert len(replies) == 100 and not any(r["ok"] for r in replies)
    assert bench.server.counters.errors == 100
    assert bench.ask(sock, b'{"op": "get"}')["ok"]  # still served


def test_a_client_that_never_reads_is_dropped_and_never_stalls_the_others(bench: Bench) -> None:
    greedy = bench.client()
    greedy.setblocking(False)
    polite = bench.client()
    request = b'{"op": "get"}\n' * 256
    for _ in range(2000):  # each `get` answers ~1 KiB: the outbox bound is passed long before
        try:
            greedy.send(request)
        except BlockingIOError:
            pass
        except OSError:
            break  # dropped: the server closed it
        bench.pump(1)
        if bench.server.counters.dropped:
            break
    assert bench.server.counters.dropped == 1
    assert bench.ask(polite, b'{"op": "get"}')["ok"]
    greedy.close()


class BrokenRelay(FakeRelay):
    def stats(self) -> dict[str, Any]:
        raise RuntimeError("a bug")


def test_a_bug_behind_the_protocol_is_an_error_reply_not_a_dead_relay(bench: Bench) -> None:
    bench.server.relay = BrokenRelay()
    sock = bench.client()
    assert bench.ask(sock, b'{"op": "stats"}') == {"ok": False, "error": "internal error in the relay (RuntimeError)"}
    assert bench.ask(sock, b'{"op": "get"}')["ok"]
    sock.close()


# --------------------------------------------------------------------------- peers other than root


@pytest.mark.skipif(os.geteuid() != 0, reason="changing uid needs root")
def test_a_user_other_than_root_can_neither_reach_nor_use_the_socket(bench: Bench) -> None:
    directory = bench.path.parent

    def child(name: str) -> int:
        return connect_as_nobody(directory, name, lambda: bench.pump(1))

    assert child(bench.path.name) == EACCES_STATUS  # the 0700 directory: EACCES
    assert bench.path.stat().st_mode & 0o777 == control.SOCKET_MODE
    # Opened, as a mistake or an attack would: SO_PEERCRED still refuses.
    os.chmod(directory, 0o777)
    os.chmod(bench.path, 0o666)
    try:
        assert child(bench.path.name) == REFUSED_STATUS
    finally:
        os.chmod(directory, 0o700)
    assert bench.server.counters.refused_peer == 1
    assert bench.server.counters.accepted == 0


# --------------------------------------------------------------------------- the delay line


def test_the_delay_line_holds_at_most_its_limit_and_counts_the_overflow() -> None:
    import random

    d = Direction(Impairments(delay_s=60.0), random.Random(1))
    for _ in range(DELAY_LINE_LIMIT_PACKETS + 500):
        d.arrive(b"f" * 60, 0.0)
    assert d.pending() == DELAY_LINE_LIMIT_PACKETS
    assert d.counters.limit_drops == 500
    assert d.due(59.0) == []
    assert len(d.due(60.0)) == DELAY_LINE_LIMIT_PACKETS  # everything held is delivered in time
    d.arrive(b"f" * 60, 60.0)  # room again
    assert d.pending() == 1 and d.counters.limit_drops == 500


def test_the_delay_line_is_bounded_in_bytes_too() -> None:
    import random

    d = Direction(Impairments(delay_s=1.0), random.Random(1), limit_bytes=10 * 65_536)
    jumbo = bytes(65_536)
    for _ in range(15):
        d.arrive(jumbo, 0.0)
    assert d.pending() == 10 and d.counters.limit_drops == 5
    assert len(d.due(1.0)) == 10
    d.arrive(jumbo, 1.0)
    assert d.pending() == 1


def test_server_bounds_are_stated() -> None:
    assert control.MAX_CONNECTIONS == 8 and protocol.MAX_MESSAGE_BYTES == 65_536
    assert server.MAX_OUTBOX_BYTES >= 64 * 1024
