"""In-process stand-ins for agents' probe endpoints: a `Site` that calls a `ProbeService` directly
(no SSH, no frames), on a clock shifted by a known offset, so that the controller's mapping of
every instant back onto its own clock is proven exactly."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import BackendError
from drills.remote.probe_service import METHODS, ProbeService

T = TypeVar("T")


class ShiftedClock:
    """`base` read `offset_s` later: what an agent's monotonic clock is to the controller's
    (`controller_instant = agent_instant - offset_s`)."""

    def __init__(self, base: Clock, offset_s: float) -> None:
        self.base, self.offset_s = base, offset_s

    def now_s(self) -> float:
        return self.base.now_s() + self.offset_s

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        return self.base.sleep_until(instant_s - self.offset_s, stop, precise)


@dataclass
class LocalSite:
    """A host's agent, in process: `call` is the method of the ProbeService by name, as the agent
    dispatches a `probe` frame. Every call is written to `calls` (shared between sites, so the
    order across hosts shows). `broken` methods raise BackendError as a lost channel would."""

    host: str
    service: ProbeService
    offset_s: float
    bound_s: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def call(self, method: str, *args: object) -> object:
        self.calls.append((self.host, method))
        if method in self.broken:
            raise BackendError(f"{self.host}: the agent's channel is lost")
        assert method in METHODS
        carried(args)
        answer: object = getattr(self.service, method)(*args)
        carried(answer)
        return answer


# What the agent's codec carries (drills.remote.codec on the agent branch): JSON's own values,
# tuples, lists, dicts, sets, ipaddress objects, enums of socket and signal, and dataclasses of
# these modules only.
CODEC_MODULES = re.compile(
    r"drills\.(backend|scenario\.(resolved|probes|steps|model|model_\w+)|impairment|rules|records|hosts\.records|remote\.\w+)"
)


def carried(value: object) -> None:
    """Fail unless the agent's codec could carry `value` across the channel."""
    if value is None or isinstance(value, bool | int | float | str | IPv4Address | IPv6Address):
        return
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            carried(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            carried(key)
            carried(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        assert CODEC_MODULES.fullmatch(type(value).__module__), f"the codec does not carry {type(value)}"
        for f in dataclasses.fields(value):
            carried(getattr(value, f.name))
    else:
        raise AssertionError(f"the codec does not carry {type(value)}")


def site(host: str, sockets: SocketOps, base: Clock, offset_s: float, calls: list[tuple[str, str]], **kw: object) -> LocalSite:
    """A site whose service runs on `base` shifted by `offset_s`."""
    service = ProbeService(sockets, ShiftedClock(base, offset_s), **kw)  # type: ignore[arg-type]
    return LocalSite(host, service, offset_s, bound_s=0.001, calls=calls)


class LocalSockets:
    """SocketOps of this process's own namespace: every node is here (127.0.0.1, no root)."""

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()

    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        self.opened[node] += 1
        return socket.socket(family, kind, proto)

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        return fn()


def until(done: Callable[[], bool], what: str = "the probes to get going") -> None:
    """Wait for `done` (a bound only against a hang: no assertion depends on the timing)."""
    ready = threading.Event()
    for _ in range(2000):
        if done():
            return
        ready.wait(0.01)
    raise AssertionError(f"waited 20 s for {what}")
