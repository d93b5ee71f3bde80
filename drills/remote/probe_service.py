"""Probe endpoints on an agent's host (a stub on this branch: the probe helper's module replaces
it at merge). The agent dispatches `probe` requests to these methods by name
(drills.remote.protocol.PROBE_METHODS)."""

from __future__ import annotations

from typing import Any

from drills.backend import SocketOps
from drills.clock import Clock
from drills.errors import BackendError
from drills.records import ProbeHealth


class ProbeService:
    """Probes and echo responders of one host's nodes, on its clock."""

    def __init__(self, sockets: SocketOps, clock: Clock) -> None:
        self._sockets = sockets
        self._clock = clock

    def _missing(self, what: str) -> BackendError:
        return BackendError(f"probe endpoint {what}: not in this build of the agent")

    def echo(self, *args: Any, **kwargs: Any) -> None:
        raise self._missing("echo")

    def stream(self, *args: Any, **kwargs: Any) -> None:
        raise self._missing("stream")

    def app(self, *args: Any, **kwargs: Any) -> None:
        raise self._missing("app")

    def health(self, now_s: float) -> list[ProbeHealth]:
        return []

    def stop(self, *args: Any, **kwargs: Any) -> None:
        raise self._missing("stop")

    def stop_all(self) -> None:
        """Stop every probe and responder (idempotent; the dead-man switch calls it)."""
