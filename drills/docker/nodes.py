"""Node faults on containers, each confirmed by Docker's state and by the kernel.

- kill: `docker kill`, then wait until Docker shows the container exited and /proc shows no
  process left in its namespace. The namespace itself outlives the container (drills holds it
  bound at /run/netns/drill-RUN-NODE), so the node's veth ends survive, dark.
- start: `docker start` gives the container a new, empty namespace (Docker makes one per start).
  The node's link interfaces move from the old namespace into the new one (the peers' ends, their
  addresses and routes are untouched), the name is bound to the new namespace, and the node is
  configured again as at deploy: routing sysctls, addresses, links up, static routes, `exec`
  lines. Confirmed when Docker shows it running and /run/netns/drill-RUN-NODE is the namespace of
  its main process.
- pause / unpause: Docker's freezer; confirmed by Docker's state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from drills.clock import Clock
from drills.docker import nslink
from drills.docker.api import ContainerState, Docker
from drills.errors import BackendError, DrillError
from drills.netns import kernel
from drills.netns.backend import NODE_SYSCTLS, _configure, install_routes
from drills.scenario.resolved import Node

STATE_TIMEOUT_S = 10.0
POLL_S = 0.005


def set_node_sysctls(namespace: str) -> None:
    """The routing sysctls every drills node has (see NODE_SYSCTLS), in a container's namespace."""

    def work() -> None:
        for key, value in NODE_SYSCTLS:
            kernel.write_sysctl(key, value)

    kernel.run_in_namespace(namespace, work)


def run_exec_lines(docker: Docker, container: str, node: Node) -> None:
    """A container node's `exec` lines, in order, as containerlab runs them after deploy."""
    assert node.container is not None
    for line in node.container.exec:
        code, output, _pid = docker.exec(container, ["/bin/sh", "-c", line])
        if code != 0:
            raise BackendError(f"node {node.name}: exec `{line}` exited {code}: {output.strip()[-400:]}")


@dataclass
class ContainerNode:
    """One container node during a drill; connects to Docker on first use (not at build time,
    so `drill plan` never needs Docker). Waits are timed on `clock` (the drill's)."""

    node: Node
    namespace: str
    clock: Clock
    _docker: list[Docker] = field(default_factory=list, repr=False)

    @property
    def container(self) -> str:
        assert self.node.container is not None
        return self.node.container.attach or self.namespace

    def docker(self) -> Docker:
        if not self._docker:
            self._docker.append(Docker.connect())
        return self._docker[0]

    def _wait(self, want: str) -> ContainerState:
        deadline_s = self.clock.now_s() + STATE_TIMEOUT_S
        while True:
            state = self.docker().state(self.container)
            if state is None:
                raise BackendError(f"container {self.container} disappeared")
            if state.status == want and (want != "running" or state.pid):
                return state
            if self.clock.now_s() > deadline_s:
                raise BackendError(f"container {self.container} is {state.status}, not {want}, after {STATE_TIMEOUT_S:g} s")
            self.clock.sleep_until(self.clock.now_s() + POLL_S)

    def kill(self) -> int:
        """Kill the container; returns how many processes its namespace had."""
        before = kernel.pids_in_namespaces([self.namespace]).get(self.namespace, [])
        self.docker().kill(self.container)
        self._wait("exited")
        deadline_s = self.clock.now_s() + STATE_TIMEOUT_S
        while left := kernel.pids_in_namespaces([self.namespace]).get(self.namespace, []):
            if self.clock.now_s() > deadline_s:
                raise BackendError(f"container {self.container} exited but processes {left} remain in {self.namespace}")
            self.clock.sleep_until(self.clock.now_s() + POLL_S)
        return len(before)

    def start(self, old_ipr: Any, interfaces: list[tuple[str, int]]) -> None:
        """Start the container again and move `interfaces` (name, index in the old namespace,
        reached through `old_ipr`) into its new namespace, then configure it as at deploy. The
        caller must drop its handles of the old namespace (`Handles.forget`)."""
        state = self.docker().state(self.container)
        if state is None:
            raise BackendError(f"container {self.container} no longer exists; cannot restore it")
        if not state.running:
            self.docker().start(self.container)
            state = self._wait("running")
        if not nslink.same_namespace(self.namespace, state.pid):
            fd = os.open(nslink.namespace_file(state.pid), os.O_RDONLY | os.O_CLOEXEC)
            try:
                for name, index in interfaces:
                    with kernel.netlink_errors(f"move {name} into the restarted container {self.container}"):
                        old_ipr.link("set", index=index, net_ns_fd=fd)
            finally:
                os.close(fd)
            nslink.rebind(self.namespace, state.pid)
        node = self.node
        if node.container is not None and node.container.attach is None:
            set_node_sysctls(self.namespace)  # an attached lab container keeps its own settings
        kernel.in_each_namespace([self.namespace], lambda _name, ipr: _configure(node, ipr))
        kernel.in_each_namespace(
            [self.namespace], lambda _name, ipr: install_routes(node, ipr, kernel.local_link_index)
        )
        if node.container is not None and node.container.attach is None:
            run_exec_lines(self.docker(), self.container, node)
        state = self._wait("running")
        if not nslink.same_namespace(self.namespace, state.pid):
            raise BackendError(f"{self.namespace} is not the namespace of the restarted container {self.container}")

    def pause(self) -> None:
        self.docker().pause(self.container)
        self._wait("paused")

    def unpause(self) -> None:
        try:
            self.docker().unpause(self.container)
        except DrillError:
            state = self.docker().state(self.container)
            if state is None or state.status != "running":  # already running: a retried revert
                raise
        self._wait("running")
