"""What every group of the namespace backend's node operations shares: the run, its namespaces,
the drill clock, and netlink handles per thread (a netlink socket serves one caller at a time:
the drill clock's thread and a ramp's driver thread each get their own)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from drills.clock import Clock
from drills.netns.handles import Handles
from drills.runs import Run
from drills.scenario.resolved import Node, Service, Topology

Log = Callable[[str], None]
# The backend's own way to start a service (journaled, readiness checked), as deploy does; the
# last argument, when given, is called once the service's process runs (before its readiness).
StartService = Callable[[Run, str, Node, Service, Callable[[], None] | None], int]


class OpsBase:
    """State of a deployed run's node operations on this host's namespaces."""

    def __init__(
        self,
        run: Run,
        topology: Topology,
        namespaces: Mapping[str, str],
        engines: Mapping[str, str],
        clock: Clock,
        log: Log,
        start_service: StartService,
    ) -> None:
        self.run = run
        self.topology = topology
        self.namespaces = dict(namespaces)  # node -> namespace name on this host
        self.engines = dict(engines)  # link -> "kernel" | "userspace"
        self.clock = clock
        self.log = log
        self._start_service = start_service
        self._local = threading.local()
        self._all_handles: list[Handles] = []
        self._owned: list[tuple[threading.Thread, Handles]] = []  # which thread opened which
        self._lock = threading.Lock()

    @property
    def handles(self) -> Handles:
        """This thread's netlink handles (opened lazily, kept until `close` or until the thread has ended)."""
        handles: Handles | None = getattr(self._local, "handles", None)
        if handles is None:
            handles = Handles(self.namespaces)
            self._local.handles = handles
            with self._lock:
                # A thread that has ended (a ramp's driver, one per repetition) needs its sockets no more.
                for thread, old in [entry for entry in self._owned if not entry[0].is_alive()]:
                    self._owned.remove((thread, old))
                    self._all_handles.remove(old)
                    old.close()
                self._all_handles.append(handles)
                self._owned.append((threading.current_thread(), handles))
        return handles

    def warm(self) -> None:
        self.handles.warm(self.topology)

    def forget(self, node: str) -> None:
        """Drop every thread's handles of `node`: its namespace was replaced."""
        with self._lock:
            for handles in self._all_handles:
                handles.forget(node)

    def close(self) -> None:
        with self._lock:
            for handles in self._all_handles:
                handles.close()
            self._all_handles.clear()
            self._owned.clear()
        self._local = threading.local()
