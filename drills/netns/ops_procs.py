"""Process, service and exec operations on namespaces. (Issue 12: filled in by the node-fault
split.)"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence

from drills.backend import ExecResult
from drills.errors import BackendError
from drills.netns import services
from drills.netns.ops_base import OpsBase
from drills.scenario.resolved import Service


class ProcessOpsMixin(OpsBase):
    def processes(self, node: str) -> list[int]:
        raise NotImplementedError

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        raise NotImplementedError

    def process_state(self, node: str, pid: int) -> str | None:
        raise NotImplementedError

    def kill_all(self, node: str) -> int:
        raise NotImplementedError

    def stop_all(self, node: str) -> int:
        raise NotImplementedError

    def continue_all(self, node: str) -> None:
        raise NotImplementedError

    def boot(self, node: str) -> bool:
        return False  # a namespace outlives its processes: nothing to bring back

    def start_service(self, node: str, service: Service) -> int:
        return self._start_service(self.run, self.namespaces[node], self.topology.node(node), service)

    def stop_service(self, node: str, service: str) -> None:
        raise NotImplementedError

    def service_running(self, node: str, service: str) -> bool:
        raise NotImplementedError

    def exec(self, node: str, command: str, timeout_s: float) -> ExecResult:
        try:
            done = services.run_shell(self.namespaces[node], command, timeout_s)
        except subprocess.TimeoutExpired:
            raise BackendError(f"exec on {node} still running after {timeout_s:g} s: {command}") from None
        return ExecResult(done.returncode, done.stdout, done.stderr)
