"""The control channel of a relay: JSON lines over a unix stream socket.

The socket is bound in the abstract namespace (no file to clean up; it vanishes with the relay)
under a name made of the link's first end's namespace and interface, which carry the run id:
whoever knows the testbed can reach its relays (a drill's faults, the conformance suite, the
benchmark) and no two runs share a name. The deploying process binds and listens before it
starts the relay and hands the listening socket over, so a client may connect at once.

Requests: `{"op": "set", "direction": "a-to-b", "params": {...}}` answers with the parameters
now in force for that direction; `{"op": "get"}` with the relay's pid, seed, parameters and the
administrative state it sees on each end; `{"op": "stats"}` with per-direction counters. A
`set` is confirmed only when the relay's answer equals what was asked: that is this engine's
read-back, as the qdisc dump is the kernel's.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from drills.errors import BackendError
from drills.userspace.impair import Impairments

TIMEOUT_S = 2.0
MAX_ADDRESS_BYTES = 107  # sun_path minus the abstract namespace's leading NUL


def address(namespace_a: str, ifname_a: str) -> str:
    """The abstract socket name of the relay serving the link whose first end is given."""
    name = f"\0drills-relay/{namespace_a}/{ifname_a}"
    if len(name.encode()) > MAX_ADDRESS_BYTES + 1:
        raise BackendError(f"relay control name for {namespace_a}:{ifname_a} is too long")
    return name


def listen(name: str) -> socket.socket:
    """Bind and listen on `name` (in the caller's network namespace); given to the relay."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise BackendError(f"cannot bind relay control socket {name[1:]}: {exc.strerror}") from None
    return sock


class RelayControl:
    """A connection to one relay's control socket."""

    def __init__(self, name: str, timeout_s: float = TIMEOUT_S) -> None:
        self.name = name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect(name)
        except OSError as exc:
            self._sock.close()
            raise BackendError(f"relay {name[1:]} is not reachable: {exc.strerror or exc}") from None
        self._buffer = b""

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
            while b"\n" not in self._buffer:
                data = self._sock.recv(65_536)
                if not data:
                    raise BackendError(f"relay {self.name[1:]} closed its control channel")
                self._buffer += data
        except OSError as exc:
            raise BackendError(f"relay {self.name[1:]}: {exc.strerror or exc}") from None
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise BackendError(f"relay {self.name[1:]} refused {message.get('op')}: {reply.get('error')}")
        return reply

    def set(self, direction: str, params: Impairments) -> None:
        """Put `params` in force for `direction`; BackendError unless the relay reads them back."""
        reply = self.request({"op": "set", "direction": direction, "params": params.to_wire()})
        shown = reply["params"].get(direction)
        if shown != json.loads(json.dumps(params.to_wire())):
            raise BackendError(f"relay {self.name[1:]} shows {shown} for {direction}, not {params.to_wire()}")

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
