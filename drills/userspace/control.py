"""The control channel of a relay: JSON lines over a unix stream socket, for root only.

The socket is a file in the run directory's `relay/` (mode 0700, checked to be ours and not a
symlink), named after the link: only root (and the relay's own uid) can reach it, and the relay
also checks every peer's SO_PEERCRED, so a local user can neither change a drill's impairments
nor stall or crash the relay. The socket goes with the run directory at teardown. The deploying
process binds and listens before it starts the relay and hands the listening socket over, so a
client may connect at once. The protocol itself (bounds, checks, replies) is `protocol`.

Requests: `{"op": "set", "direction": "a-to-b", "params": {...}}` answers with the parameters
now in force for that direction; `{"op": "get"}` with the relay's pid, seed, parameters and the
administrative state it sees on each end; `{"op": "stats"}` with per-direction counters. A
`set` is confirmed only when the relay's answer equals what was asked: that is this engine's
read-back, as the qdisc dump is the kernel's.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from drills.errors import BackendError
from drills.userspace.impair import Impairments

TIMEOUT_S = 2.0
DIR_NAME = "relay"  # in the run directory: the control sockets of the run's relays
DIR_MODE = 0o700
SOCKET_MODE = 0o600  # connecting takes write permission on the socket file: root's alone too
MAX_CONNECTIONS = 8  # concurrent control clients a relay serves; more are refused at once
# Connections waiting for the relay's accept (it takes one a pass of its loop, then serves or
# refuses it): room for a burst, so that a client waits its turn instead of being turned away.
LISTEN_BACKLOG = 64
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def control_dir(run_dir: Path) -> Path:
    """The root-only directory holding the control sockets of a run's relays."""
    return run_dir / DIR_NAME


def socket_path(run_dir: Path, link: str) -> Path:
    """The control socket of the relay serving `link` in the run at `run_dir`."""
    name = link if _SAFE_NAME.fullmatch(link) else f"link-{zlib.crc32(link.encode()):08x}"
    return control_dir(run_dir) / f"{name}.sock"


def make_control_dir(run_dir: Path) -> Path:
    """Create (or check) the run's control directory: a real directory, ours, mode 0700."""
    directory = control_dir(run_dir)
    try:
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise BackendError(f"cannot create the relay control directory {directory}: {exc.strerror}") from None
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, DIR_MODE)  # mkdir's mode went through the umask
    finally:
        os.close(fd)
    _open_dir(directory).close()  # refuses a symlink or a directory another user could enter
    return directory


class _Dir:
    """An O_PATH descriptor of a checked control directory. Sockets are bound and reached as
    /proc/self/fd/N/NAME: sun_path holds 108 bytes and a run directory may be deeper, and the
    descriptor pins the directory that was checked (no symlink swapped in between)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def path(self, name: str) -> str:
        return f"/proc/self/fd/{self.fd}/{name}"

    def close(self) -> None:
        os.close(self.fd)


def _open_dir(directory: Path) -> _Dir:
    try:
        fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise BackendError(f"relay control directory {directory}: {exc.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid not in (0, os.geteuid()) or stat.S_IMODE(info.st_mode) & 0o077:
        os.close(fd)
        raise BackendError(
            f"relay control directory {directory} is owned by uid {info.st_uid} with mode "
            f"{stat.S_IMODE(info.st_mode):o}; it must be ours and 700 (remove it and deploy again)"
        )
    return _Dir(fd)


def listen(path: Path) -> socket.socket:
    """Bind and listen on the socket file `path` (in a checked control directory); given to the relay."""
    directory = _open_dir(path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(directory.path(path.name))
        os.chmod(directory.path(path.name), SOCKET_MODE)  # bind's mode went through the umask
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise BackendError(f"cannot bind relay control socket {path}: {exc.strerror}") from None
    finally:
        directory.close()
    return sock


class RelayControl:
    """A connection to one relay's control socket."""

    def __init__(self, path: Path, timeout_s: float = TIMEOUT_S) -> None:
        self.name = str(path)
        directory = _open_dir(path.parent)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect bounded by SO_SNDTIMEO: with a Python timeout the socket would be
        # non-blocking and a full backlog would fail at once (EAGAIN) instead of waiting its turn.
        seconds = int(timeout_s)
        self._sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, int((timeout_s - seconds) * 1e6))
        )
        try:
            self._sock.connect(directory.path(path.name))
            self._sock.settimeout(timeout_s)
        except OSError as exc:
            self._sock.close()
            raise BackendError(f"relay {path} is not reachable: {exc.strerror or exc}") from None
        finally:
            directory.close()
        self._buffer = b""

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
            while b"\n" not in self._buffer:
                data = self._sock.recv(65_536)
                if not data:
                    raise BackendError(f"relay {self.name} closed its control channel")
                self._buffer += data
        except OSError as exc:
            raise BackendError(f"relay {self.name}: {exc.strerror or exc}") from None
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise BackendError(f"relay {self.name} refused {message.get('op')}: {reply.get('error')}")
        return reply

    def set(self, direction: str, params: Impairments) -> None:
        """Put `params` in force for `direction`; BackendError unless the relay reads them back."""
        reply = self.request({"op": "set", "direction": direction, "params": params.to_wire()})
        shown = reply["params"].get(direction)
        if shown != json.loads(json.dumps(params.to_wire())):
            raise BackendError(f"relay {self.name} shows {shown} for {direction}, not {params.to_wire()}")

    def params(self) -> dict[str, Impairments]:
        reply = self.request({"op": "get"})
        return {name: Impairments.from_wire(wire) for name, wire in reply["params"].items()}

    def get(self) -> dict[str, Any]:
        return self.request({"op": "get"})

    def stats(self) -> dict[str, dict[str, int]]:
        counters: dict[str, dict[str, int]] = self.request({"op": "stats"})["counters"]
        return counters

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RelayControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
