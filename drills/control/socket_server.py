"""The control socket: `RUN_DIR/control.sock`, root only, one JSON line in, one JSON line out
(`drill control RUN ...` is its client).

Bounded everywhere: a request is at most 8 KiB up to its newline, read within 5 s; at most 4
connections at once (the next one is answered "busy" and closed); the peer must be root
(SO_PEERCRED), on top of the socket's mode 0600 in the run's private directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from drills.control.commands import MAX_REQUEST_BYTES, Control, Refused, answer_json, execute, parse_request
from drills.errors import BadInput

SOCKET_NAME = "control.sock"
MAX_CONNECTIONS = 4
READ_TIMEOUT_S = 5.0
# An answer may wait for the drill's clock thread (at most ~10 s, ExerciseControl's bound).
ANSWER_TIMEOUT_S = 15.0
ACCEPT_POLL_S = 0.2  # how soon `close` is noticed by the accepting thread
SOURCE = "terminal"


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def read_line(conn: socket.socket, limit_bytes: int, timeout_s: float) -> bytes | Refused:
    """Bytes up to the first newline (not included), or why not: too long, too slow, closed."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            return Refused(f"timed out: a request is one JSON line, sent within {timeout_s:g} s")
        conn.settimeout(left_s)
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return Refused("bad request: the connection closed before a newline") if data else Refused("")
        data += chunk
        if len(data.split(b"\n", 1)[0]) > limit_bytes:
            return Refused(f"request too large: at most {limit_bytes} bytes")
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, answer: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.settimeout(READ_TIMEOUT_S)
        conn.sendall(json.dumps(answer, separators=(",", ":")).encode() + b"\n")


class ControlSocket:
    """The socket server on one control; `open(run_dir)` / `close()` are what the control's
    on_attach / on_detach call."""

    def __init__(self, control: Control, allowed_uid: int = 0) -> None:
        self.control = control
        self.allowed_uid = allowed_uid  # root; a test may name another uid to see a refusal
        self.path: Path | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()

    def attach(self) -> None:
        """Open the socket when the drill's run directory exists; close it before it goes."""
        self.control.on_attach(self.open)
        self.control.on_detach(self.close)

    def open(self, run_dir: Path) -> None:
        path = Path(run_dir) / SOCKET_NAME
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of a crashed run in the same directory
        old = os.umask(0o077)  # born 0600: never a moment when another user could connect
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        listener.listen(MAX_CONNECTIONS)
        listener.settimeout(ACCEPT_POLL_S)
        with self._lock:
            self.path, self._listener = path, listener
            self._stopping.clear()
            self._thread = threading.Thread(target=self._accept_loop, args=(listener,), name="control-socket", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            listener, thread, path = self._listener, self._thread, self.path
            self._listener = self._thread = None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout=ACCEPT_POLL_S * 10)
        if listener is not None:
            listener.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                _send(conn, answer_json(Refused(f"busy: at most {MAX_CONNECTIONS} connections at once")))
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="control-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                if _peer_uid(conn) != self.allowed_uid:
                    _send(conn, answer_json(Refused("refused: only root may control the exercise")))
                    return
                line = read_line(conn, MAX_REQUEST_BYTES, READ_TIMEOUT_S)
                if isinstance(line, Refused):
                    if line.message:
                        _send(conn, answer_json(line))
                    return
                request = parse_request(line)
                if isinstance(request, Refused):
                    _send(conn, answer_json(request))
                    return
                _send(conn, execute(self.control, request, SOURCE))
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            self._slots.release()


def ask(path: Path, request: dict[str, Any], timeout_s: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
    """`drill control`'s side: send one request, return the answer (BadInput when no one listens)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with client:
        client.settimeout(timeout_s)
        try:
            client.connect(str(path))
            client.sendall(json.dumps(request).encode() + b"\n")
            # A state is larger than a request: a long MSEL, logs; bounded all the same.
            line = read_line(client, 64 * MAX_REQUEST_BYTES * 16, timeout_s)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise BadInput(f"nobody answers on {path}: the drill is over or was not started with --control") from exc
        except OSError as exc:
            raise BadInput(f"the control socket {path} failed: {exc}") from exc
    if isinstance(line, Refused):
        raise BadInput(f"no answer on {path}: {line.message or 'the connection closed'}")
    try:
        answer = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInput(f"the control socket {path} answered something that is not JSON") from exc
    if not isinstance(answer, dict):
        raise BadInput(f"the control socket {path} answered something that is not a JSON object")
    return answer
