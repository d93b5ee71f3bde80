"""Node faults: `node-loss` (a crash or power loss), `node-freeze` (a hang) and `service-stop`.

Each one validates, applies, confirms in the kernel (/proc for processes, netlink for links),
reverts and confirms the revert. Which processes a node has is read from /proc (every process
whose network namespace is the node's); which processes a service has, from the run's journal
(`FaultContext.service_processes`), and a journaled pid is signalled only while its start time
still matches, so a reused pid is never touched. Services are started again through
`FaultContext.start_service`: the backend's own code path, journaled exactly as at deploy, so
teardown and `drill clean` find a restarted process too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills.engine.faults import FaultContext, register
from drills.errors import BackendError
from drills.netns import kernel, services
from drills.netns.backend import install_routes
from drills.netns.handles import Handles
from drills.scenario.resolved import Interface, Node, Service, Topology

POLL_S = 0.002
GONE_TIMEOUT_S = 5.0  # for SIGKILLed processes to disappear from the namespace
STATE_TIMEOUT_S = 2.0  # for signalled processes to show the stopped (or running) state

_STOPPED = frozenset("Tt")  # stopped by a signal ('t': stopped while being traced)
_DEAD = frozenset("ZX")  # exited: a zombie waiting for its parent, or being reaped


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """State letter and process group of `pid` (/proc/PID/stat), or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _state(pid: int) -> str:
    stat = _proc_stat(pid)
    return "X" if stat is None else stat[0]


def _namespace_pids(namespace: str) -> list[int]:
    """Processes living in `namespace` now (a zombie has left it: its namespaces are released)."""
    return kernel.pids_in_namespaces([namespace]).get(namespace, [])


def _live(processes: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """The journaled processes that still run: same pid *and* same start time, not exited."""
    return [
        (pid, ticks)
        for pid, ticks in processes
        if ticks is not None and kernel.process_start_ticks(pid) == ticks and _state(pid) not in _DEAD
    ]


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _kill_everything(namespace: str, what: str) -> int:
    """SIGKILL every process in `namespace` until /proc shows none there (a process forked
    meanwhile is caught by the next scan); returns how many were killed. Polls every 2 ms rather
    than `services.kill_and_wait`'s 10 ms: the time to confirm is part of the event's accuracy."""
    killed: set[int] = set()
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while pids := _namespace_pids(namespace):
        if time.monotonic() > deadline:
            raise BackendError(f"{what}: processes {sorted(pids)} still run in {namespace} after SIGKILL")
        _signal([pid for pid in pids if pid not in killed], signal.SIGKILL)
        killed.update(pids)
        time.sleep(POLL_S)
    for pid in killed:  # a service is this process's child: reap it rather than leave a zombie
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return len(killed)


def _stop_everything(namespace: str, what: str) -> int:
    """SIGSTOP every process in `namespace` until each shows the stopped state; returns how many."""
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while True:
        pids = _namespace_pids(namespace)
        # The kernel stops a process when it next runs, not when the signal is sent: poll.
        running = [pid for pid in pids if _state(pid) not in _STOPPED | _DEAD]
        if not running:
            return len(pids)
        if time.monotonic() > deadline:
            raise BackendError(f"{what}: processes {sorted(running)} in {namespace} are not stopped after SIGSTOP")
        _signal(running, signal.SIGSTOP)
        time.sleep(POLL_S)


def _continue_everything(namespace: str, what: str) -> None:
    """SIGCONT every stopped process in `namespace` until none shows the stopped state."""
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while stopped := [pid for pid in _namespace_pids(namespace) if _state(pid) in _STOPPED]:
        if time.monotonic() > deadline:
            raise BackendError(f"{what}: processes {sorted(stopped)} in {namespace} are still stopped after SIGCONT")
        _signal(stopped, signal.SIGCONT)
        time.sleep(POLL_S)


def _start_again(ctx: FaultContext, node: str, service: Service) -> None:
    """Start a stopped service through the backend (readiness checked there) and confirm that its
    new process is journaled and alive. Idempotent: a revert retried at teardown after a partial
    failure must not start a second copy, so a service still running is left as it is."""
    what = f"service {node}/{service.name}"
    if _live(ctx.service_processes(node, service.name)):
        return
    pid = ctx.start_service(node, service)
    journaled = ctx.service_processes(node, service.name)
    if not journaled or journaled[-1][0] != pid:
        raise BackendError(f"{what} was started again (pid {pid}) but its process is not journaled")
    if not _live(journaled[-1:]):
        raise BackendError(f"{what} exited right after it was started again (pid {pid})")


def _container(box: dict[str, Any], node: Node, ctx: FaultContext) -> Any:
    """The Docker side of a container node, made on first use (Docker is imported only then)."""
    if "node" not in box:
        from drills.docker.nodes import ContainerNode

        box["node"] = ContainerNode(node, ctx.namespaces[node.name])
    return box["node"]


# --------------------------------------------------------------------------- node-loss


@dataclass(frozen=True)
class NodeLoss:
    """A node crashes or loses power: every process in its namespace is killed (SIGKILL) and every
    link interface of the node goes administratively down, so its peers lose carrier.

    Reverting restores it as a reboot would: interfaces up (confirmed up, with carrier wherever
    the peer end is up), its addresses and static routes re-installed (the kernel drops the
    routes through an interface set down, and its IPv6 addresses too), then its services started
    again one by one, each confirmed by its readiness check. Processes that were not services
    (an `exec` left running) stay dead, as after a real reboot. Probe sockets of this drill that
    live in the node are the drill's, not the node's: on a namespace node they are not touched;
    a container node comes back in a new namespace, announced through
    `FaultContext.namespace_replaced` so that its probes follow it there."""

    node: Node
    links: tuple[tuple[Interface, Interface], ...]  # (the node's end, the peer's end) of each link
    reversible: bool = True
    _box: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # container node: its handle

    @classmethod
    def from_step(cls, topology: Topology, step: Any) -> NodeLoss:
        node = topology.node(step.node)
        links = []
        for link in topology.links:
            if link.a.node == node.name:
                links.append((link.a, link.b))
            if link.b.node == node.name:
                links.append((link.b, link.a))
        return cls(node, tuple(links))

    def _ifaces(self) -> str:
        return ", ".join(own.endpoint for own, _peer in self.links) or "no link"

    def describe(self, reverted: bool = False) -> str:
        name = self.node.name
        if not reverted:
            return f"node {name} lost: every process killed, {self._ifaces()} down"
        started = ", ".join(s.name for s in self.node.services)
        return f"node {name} restored: {self._ifaces()} up, routes re-installed" + (
            f", services {started} started again" if started else ""
        )

    def touches(self) -> list[str]:
        name = self.node.name
        return (
            [f"{name}: its container (docker kill, then docker start: a new namespace, its links moved in and configured again)"
             if self.node.kind == "container" else f"{name}: every process in its namespace (SIGKILL)"]
            + [f"{own.endpoint} admin state (down, then up; its addresses and static routes re-installed)" for own, _ in self.links]
            + [f"{peer.endpoint} carrier (lost)" for _, peer in self.links]
            + [f"{name}/{s.name} service (started again, journaled, readiness checked)" for s in self.node.services]
        )  # fmt: skip

    def apply(self, ctx: FaultContext) -> None:
        handles = ctx.handles
        # Interfaces first: the event instant is when the node fell off the network.
        for own, _peer in self.links:
            kernel.set_link(handles.of(own.node), own.name, up=False, index=handles.index(own.node, own.name))
        if self.node.kind == "container":
            # `docker kill`: the container exits; its namespace, held by drills, keeps the dark veths.
            killed = _container(self._box, self.node, ctx).kill()
        else:
            killed = _kill_everything(ctx.namespaces[self.node.name], f"node-loss {self.node.name}")
        self._confirm(handles, down=True)
        ctx.log(f"  {self.node.name}: {killed} process(es) killed")

    def revert(self, ctx: FaultContext) -> None:
        handles = ctx.handles
        name = self.node.name
        if self.node.kind == "container":
            # `docker start` gives the container a new namespace: its links move there and it is
            # configured again as at deploy (see drills.docker.nodes), then confirmed as below.
            moved = [(own.name, handles.index(name, own.name)) for own, _peer in self.links]
            before = kernel.namespace_inode(ctx.namespaces[name])
            _container(self._box, self.node, ctx).start(handles.of(name), moved)
            handles.forget(name)
            if kernel.namespace_inode(ctx.namespaces[name]) != before:  # not on a retried revert
                # Announced before confirming: the probes reopen while the links come up, so
                # the recovery is measured from a working probe.
                ctx.namespace_replaced(name)
            self._confirm(handles, down=False)
            for service in self.node.services:  # they died with the container
                _start_again(ctx, name, service)
            return
        for own, _peer in self.links:
            kernel.set_link(handles.of(name), own.name, up=True, index=handles.index(name, own.name))
        self._confirm(handles, down=False)
        ipr = handles.of(name)
        for own, _peer in self.links:
            for address in (own.ipv4, own.ipv6):
                if address is not None:  # `replace`: the IPv4 ones are still there
                    kernel.add_address(ipr, own.name, address, index=handles.index(name, own.name))

        def index_of(ifname: str) -> int:
            return handles.index(name, ifname)

        install_routes(self.node, ipr, index_of)
        for service in self.node.services:
            _start_again(ctx, name, service)

    def _confirm(self, handles: Handles, *, down: bool) -> None:
        for own, peer in self.links:
            mine = kernel.link_state(handles.of(own.node), own.name, handles.index(own.node, own.name))
            theirs = kernel.link_state(handles.of(peer.node), peer.name, handles.index(peer.node, peer.name))
            if down and mine.admin_up:
                raise BackendError(f"{own.endpoint} is still up after node-loss; the fault did not take effect")
            if down and theirs.carrier:
                raise BackendError(f"{peer.endpoint} still has carrier after node-loss; the fault did not take effect")
            if not down and not mine.admin_up:
                raise BackendError(f"{own.endpoint} is not up after reverting node-loss")
            # A peer end that is down (another fault) leaves both without carrier: not this fault's doing.
            if not down and theirs.admin_up and not (mine.carrier and theirs.carrier):
                raise BackendError(f"{own.endpoint} <-> {peer.endpoint} has no carrier after reverting node-loss")


# --------------------------------------------------------------------------- node-freeze


@dataclass(frozen=True)
class NodeFreeze:
    """A node hangs: every process in its namespace is stopped (SIGSTOP), not killed.

    Only processes freeze: the kernel of a namespace is the host's, so the node keeps forwarding
    packets, answering ARP and pings, and even completing TCP handshakes into the listen queues of
    its frozen services (a connect succeeds; the request gets no answer). Its interfaces keep
    carrier. Reverting continues (SIGCONT) every stopped process in the namespace, confirmed when
    none shows the stopped state any more; requests queued meanwhile are then served."""

    node: str
    reversible: bool = True
    container: Node | None = None  # a container node is frozen by Docker (its cgroup freezer)
    _box: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def describe(self, reverted: bool = False) -> str:
        if self.container is not None:
            return f"container node {self.node} {'unpaused' if reverted else 'paused (docker pause); the kernel still forwards'}"
        if reverted:
            return f"node {self.node} thawed: its processes continued (SIGCONT)"
        return f"node {self.node} frozen: every process stopped (SIGSTOP); the kernel still forwards"

    def touches(self) -> list[str]:
        if self.container is not None:
            return [f"{self.node}: its container (docker pause, then unpause; the kernel keeps forwarding)"]
        return [f"{self.node}: every process in its namespace (SIGSTOP, then SIGCONT; the kernel keeps forwarding)"]

    def apply(self, ctx: FaultContext) -> None:
        if self.container is not None:
            _container(self._box, self.container, ctx).pause()
            return
        stopped = _stop_everything(ctx.namespaces[self.node], f"node-freeze {self.node}")
        ctx.log(f"  {self.node}: {stopped} process(es) stopped")

    def revert(self, ctx: FaultContext) -> None:
        if self.container is not None:
            _container(self._box, self.container, ctx).unpause()
            return
        _continue_everything(ctx.namespaces[self.node], f"node-freeze {self.node}")


# --------------------------------------------------------------------------- service-stop


@dataclass(frozen=True)
class ServiceStop:
    """One service of a node stops: SIGTERM to its process group, SIGKILL after a grace period
    (`services.STOP_GRACE_S`), confirmed when neither its process nor any member of its process
    group is left. Reverting starts it again through the backend, journaled as at deploy, and is
    confirmed by its readiness check (without one: by the new process being alive)."""

    node: str
    service: Service
    reversible: bool = True

    def describe(self, reverted: bool = False) -> str:
        return f"service {self.node}/{self.service.name} {'started again' if reverted else 'stopped'}"

    def touches(self) -> list[str]:
        return [
            f"{self.node}/{self.service.name} service: its process group (SIGTERM, SIGKILL after {services.STOP_GRACE_S:g} s), then started again (journaled, readiness checked)"
        ]

    def apply(self, ctx: FaultContext) -> None:
        what = f"service {self.node}/{self.service.name}"
        running = _live(ctx.service_processes(self.node, self.service.name))
        if not running:
            raise BackendError(f"{what} is not running (no journaled process of it is alive); nothing to stop")
        survivors = services.stop_processes(running)
        # The group had its SIGTERM with the leader; members that outlived the leader go now.
        leaders = {pid for pid, _ in running}
        namespace = ctx.namespaces[self.node]
        members = [pid for pid in _namespace_pids(namespace) if (stat := _proc_stat(pid)) and stat[1] in leaders]
        survivors += services.kill_and_wait(members)
        left = _live(running) + [(pid, None) for pid in survivors]
        if left:
            raise BackendError(f"{what}: processes {sorted({pid for pid, _ in left})} still run after SIGKILL")

    def revert(self, ctx: FaultContext) -> None:
        _start_again(ctx, self.node, self.service)


# --------------------------------------------------------------------------- builders


@register("node-loss")
def _node_loss(topology: Topology, step: Any) -> NodeLoss:
    return NodeLoss.from_step(topology, step)


@register("node-freeze")
def _node_freeze(topology: Topology, step: Any) -> NodeFreeze:
    node = topology.node(step.node)
    return NodeFreeze(node.name, container=node if node.kind == "container" else None)


@register("service-stop")
def _service_stop(topology: Topology, step: Any) -> ServiceStop:
    node = topology.node(step.node)
    for service in node.services:
        if service.name == step.service:
            return ServiceStop(node.name, service)
    raise KeyError(f"node {node.name} has no service {step.service}")  # the loader refuses this first
