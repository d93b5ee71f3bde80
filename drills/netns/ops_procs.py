"""Process, service and exec operations on namespaces.

A namespace node's processes are those /proc shows in its namespace (drills.netns.procs); a
service's, those the run's journal lists for it whose pid still has the journaled start time.
Every deadline and poll is on the drill clock (`self.clock`).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence

from drills.backend import ExecResult
from drills.errors import BackendError
from drills.netns import procs, services
from drills.netns.ops_base import OpsBase
from drills.scenario.resolved import Service


class ProcessOpsMixin(OpsBase):
    # Per (node, service): its journaled processes, read once (see `service_processes`).
    _journaled: dict[tuple[str, str], procs.Journaled] | None = None
    # Pidfds held per (purpose, node): ("armed", node) opened before the clock by `arm_stop`,
    # used by the node's next `stop_all`; ("frozen", node) what that `stop_all` stopped, for
    # `continue_all` to continue first. Each is used once, then closed.
    _held: dict[tuple[str, str], list[procs.Member]] | None = None

    def processes(self, node: str) -> list[int]:
        return procs.namespace_pids(self.namespaces[node])

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        # Only the node's own: a pid that left it (or was reused by a host process) is not signalled.
        inside = set(self.processes(node))
        procs.send([pid for pid in pids if pid in inside], sig)

    def process_state(self, node: str, pid: int) -> str | None:
        return procs.state(pid)

    def kill_all(self, node: str) -> int:
        return procs.kill_everything(self.namespaces[node], f"node {node}", self.clock)

    def _hold(self, purpose: str, node: str, members: list[procs.Member]) -> None:
        with self._lock:
            held = self._held if self._held is not None else {}
            self._held = held
            previous = held.get((purpose, node), [])
            held[(purpose, node)] = members
        procs.close_members(previous)

    def _take(self, purpose: str, node: str) -> list[procs.Member]:
        with self._lock:
            return (self._held or {}).pop((purpose, node), [])

    def arm_stop(self, node: str) -> None:
        """Open a pidfd for each process of `node` now, before the clock: its next `stop_all`
        stops them with no scan of every host process first (the scan after them still finds
        any process started since)."""
        self._hold("armed", node, procs.open_members(self.namespaces[node]))

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        armed, namespace = self._take("armed", node), self.namespaces[node]
        try:
            stopped = procs.stop_everything(namespace, f"node {node}", self.clock, on_stopped, armed)
        finally:
            procs.close_members(armed)
        # After the confirmation: costs the step's confirmation, not its window.
        self._hold("frozen", node, procs.open_members(namespace, stopped))
        return len(stopped)

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        frozen = self._take("frozen", node)
        try:
            procs.continue_everything(self.namespaces[node], f"node {node}", self.clock, on_continued, frozen)
        finally:
            procs.close_members(frozen)

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held or {}, None
        for members in held.values():
            procs.close_members(members)
        super().close()

    def boot(self, node: str) -> bool:
        return False  # a namespace outlives its processes: nothing to bring back

    def service_processes(self, node: str, service: str) -> procs.Journaled:
        """(pid, start ticks) of every process journaled for the service, oldest first, alive
        or not (a pid may have been reused since: see `procs.live`). Read from the journal once
        (before the clock, by `warm`) and kept: only `start_service` journals a service's
        process while these operations live, and it reads the journal again."""
        key = (node, service)
        with self._lock:
            known = (self._journaled or {}).get(key)
        if known is None:
            known = procs.journaled(self.run, self.namespaces[node], service)
            with self._lock:
                self._journaled = {**(self._journaled or {}), key: known}
        return known

    def warm(self) -> None:
        super().warm()
        for node in self.topology.nodes:  # the journal parsed now, not on the clock
            for service in node.services:
                self.service_processes(node.name, service.name)

    def start_service(self, node: str, service: Service, on_started: Callable[[float], None] | None = None) -> int:
        what = f"service {node}/{service.name}"
        pid = self._start_service(self.run, self.namespaces[node], self.topology.node(node), service, self._stamped(on_started))
        # Read back, not assumed: teardown and `drill clean` find a process only through the journal.
        with self._lock:
            (self._journaled or {}).pop((node, service.name), None)
        journaled = self.service_processes(node, service.name)
        if not journaled or journaled[-1][0] != pid:
            raise BackendError(f"{what} was started (pid {pid}) but its process is not journaled")
        return pid

    def stop_service(self, node: str, service: str, on_stopped: Callable[[float], None] | None = None) -> None:
        what = f"service {node}/{service}"
        running = procs.live(self.service_processes(node, service))
        if not running:
            raise BackendError(f"{what} is not running (no journaled process of it is alive); nothing to stop")
        # Frozen first: the service stops acting at an instant seen here (its processes stopped),
        # however long its own exit then takes; that instant ends the event's window.
        frozen_s = procs.freeze_groups([pid for pid, _ in running], self.clock)
        if on_stopped is not None and frozen_s is not None:
            on_stopped(frozen_s)
        gone: list[float] = []
        survivors = services.stop_processes(running, self.clock, gone.append, resume=True)
        # The group had its SIGTERM with the leader; members that outlived the leader go now.
        members = procs.group_members(self.namespaces[node], {pid for pid, _ in running})
        survivors += services.kill_and_wait(members, clock=self.clock)
        if on_stopped is not None and gone and not survivors:
            on_stopped(gone[0] if not members else self.clock.now_s())
        left = procs.live(running) + [(pid, None) for pid in survivors]
        if left:
            raise BackendError(f"{what}: processes {sorted({pid for pid, _ in left})} still run after SIGKILL")

    def service_running(self, node: str, service: str) -> bool:
        return bool(procs.live(self.service_processes(node, service)))

    def _stamped(self, on_started: Callable[[float], None] | None) -> Callable[[], None] | None:
        """`on_started` called with the drill clock's instant, for a backend call that only says when."""
        return None if on_started is None else (lambda: on_started(self.clock.now_s()))

    def exec(self, node: str, command: str, timeout_s: float, on_started: Callable[[float], None] | None = None) -> ExecResult:
        try:
            done = services.run_shell(self.namespaces[node], command, timeout_s, on_started=self._stamped(on_started))
        except subprocess.TimeoutExpired:
            raise BackendError(f"exec on {node} still running after {timeout_s:g} s: {command}") from None
        return ExecResult(done.returncode, done.stdout, done.stderr)
