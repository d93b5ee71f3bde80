"""The container backend's node operations: the namespace backend's (`NetnsOps`), with only what
a container does differently overridden, and only for container nodes (a namespace node of the
same scenario is served exactly as by the namespace backend).

- kill_all: `docker kill` (the container as a whole), confirmed by Docker and by /proc.
- stop_all / continue_all: `docker pause` / `unpause` (Docker's cgroup freezer).
- boot: `docker start`, a new namespace: the node's links move in and are configured again as
  at deploy (drills.docker.nodes); every thread's handles of the node are dropped, so the next
  operation opens them in the new namespace.

Services are started by the container backend's own `start_service` (inside the container, by
`docker exec`), handed in at construction as the namespace backend hands in its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from drills.clock import Clock
from drills.docker.api import Docker
from drills.docker.nodes import ContainerNode
from drills.netns import kernel
from drills.netns.ops import NetnsOps
from drills.netns.ops_base import Log, StartService
from drills.runs import Run
from drills.scenario.resolved import Topology


class DockerOps(NetnsOps):
    """Node operations of a run whose container nodes are Docker containers."""

    def __init__(
        self,
        run: Run,
        topology: Topology,
        namespaces: Mapping[str, str],
        engines: Mapping[str, str],
        clock: Clock,
        log: Log,
        start_service: StartService,
        docker: Callable[[], Docker],
    ) -> None:
        super().__init__(run, topology, namespaces, engines, clock, log, start_service)
        self._docker = docker  # connects on first use: a drill without a container fault never asks
        self._containers: dict[str, ContainerNode] = {}

    def _container(self, node: str) -> ContainerNode | None:
        """The Docker side of a container node (None for a namespace node), made on first use."""
        spec = self.topology.node(node)
        if spec.kind != "container":
            return None
        if node not in self._containers:
            self._containers[node] = ContainerNode(spec, self.namespaces[node], self.clock, [self._docker()])
        return self._containers[node]

    def kill_all(self, node: str) -> int:
        container = self._container(node)
        if container is None:
            return super().kill_all(node)
        # The container exits; its namespace, held by drills, keeps the dark veths.
        return container.kill()

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        container = self._container(node)
        if container is None:
            return super().stop_all(node, on_stopped)
        frozen = len(self.processes(node))
        container.pause()
        return frozen

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        container = self._container(node)
        if container is None:
            super().continue_all(node, on_continued)
            return
        container.unpause()

    def boot(self, node: str) -> bool:
        container = self._container(node)
        if container is None:
            return super().boot(node)
        handles = self.handles
        # Every interface of the node: its links' ends and its LAN segment ports.
        moved = [(iface.name, handles.index(node, iface.name)) for iface in self.topology.node(node).interfaces]
        before = kernel.namespace_inode(self.namespaces[node])
        container.start(handles.of(node), moved)
        self.forget(node)
        # Unchanged on a retried boot: the container was running in its new namespace already.
        return kernel.namespace_inode(self.namespaces[node]) != before
