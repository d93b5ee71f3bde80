"""Node faults: `node-loss` (a crash or power loss), `node-freeze` (a hang) and `service-stop`.

Each one validates, applies, confirms, reverts and confirms the revert, through the node
operations of the seam only (`FaultContext.ops`): which processes a node or a service has, how
they are killed, stopped or continued, and how a node comes back (a namespace outlives its
processes; a container is started again in a new namespace) are the backend's business.
Services are started again through `ops.start_service`: the backend's own code path, journaled
exactly as at deploy, so teardown and `drill clean` find a restarted process too.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.backend import StopArming
from drills.engine.fault import CARRIER_POLL_S, CARRIER_TIMEOUT_S, FaultContext, register, wait_for
from drills.errors import BackendError
from drills.scenario.resolved import Interface, Node, Service
from drills.scenario.steps import NodeFreezeStep, NodeLossStep, ServiceStopStep

STOP_GRACE_S = 2.0  # what the backends give a stopped service before SIGKILL (for `drill plan`)


def start_again(ctx: FaultContext, node: str, service: Service, *, mark: bool = False) -> None:
    """Start a stopped service through the backend (readiness checked there) and confirm that its
    new process is alive. Idempotent: a revert retried at teardown after a partial failure must
    not start a second copy, so a service still running is left as it is. `mark`: the revert is
    in force once the service's process runs (its own start-up, to ready, is what follows the
    restore, as after any restart), where the backend tells that instant."""
    if ctx.ops.service_running(node, service.name):
        return
    pid = ctx.ops.start_service(node, service, ctx.mark_in_force if mark else None)
    if not ctx.ops.service_running(node, service.name):
        raise BackendError(f"service {node}/{service.name} exited right after it was started again (pid {pid})")


# --------------------------------------------------------------------------- node-loss


@dataclass(frozen=True)
class NodeLoss:
    """A node crashes or loses power: every process of it is killed and every link interface of
    the node goes administratively down, so its peers lose carrier.

    Reverting restores it as a reboot would: the node booted (a container is started again, in
    a new namespace, announced through `FaultContext.namespace_replaced` so that its probes
    follow it there), interfaces up (confirmed up, with carrier wherever the peer end is up),
    its addresses and static routes re-installed (the kernel drops the routes through an
    interface set down, and its IPv6 addresses too), then its services started again one by
    one, each confirmed by its readiness check. Processes that were not services (an `exec`
    left running) stay dead, as after a real reboot. Probe sockets of this drill that live in a
    namespace node are the drill's, not the node's: they are not touched."""

    node: Node
    links: tuple[tuple[Interface, Interface], ...]  # (the node's end, the peer's end) of each link
    reversible: bool = True
    in_force_at_first_change = False

    @classmethod
    def from_step(cls, step: NodeLossStep) -> NodeLoss:
        return cls(step.node, step.links)

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
        name = self.node.name
        # Interfaces first: the event instant is when the node fell off the network.
        for own, _peer in self.links:
            ctx.ops.set_link(own.node, own.name, up=False)
        # Off the network once its interfaces read back down and their peers without carrier:
        # the event is in force there. The kill and its wait for every process to be gone
        # follow; they confirm the crash but do not widen the event's window.
        self._confirm(ctx, down=True)
        if self.links:  # a node with no link is lost only once its processes are
            ctx.mark_in_force()
        killed = ctx.ops.kill_all(name)
        self._confirm(ctx, down=True)  # still down with no process left: nothing brought a link back
        ctx.log(f"  {name}: {killed} process(es) killed")

    def revert(self, ctx: FaultContext) -> None:
        name = self.node.name
        if ctx.ops.boot(name):  # False on a retried revert: the namespace is already the new one
            # Announced before confirming: the probes reopen while the links come up, so the
            # recovery is measured from a working probe.
            ctx.namespace_replaced(name)
        for own, _peer in self.links:
            ctx.ops.set_link(own.node, own.name, up=True)
        self._confirm(ctx, down=False)
        # Back on the network once its interfaces read back up with carrier, as a node powered on:
        # the restore is in force. What it then does to serve again (its addresses and routes put
        # back, each service started to ready) is its own boot, part of the recovery measured.
        if self.links:
            ctx.mark_in_force()
        for own, _peer in self.links:
            for address in (own.ipv4, own.ipv6):
                if address is not None:  # `replace`: the IPv4 ones are still there
                    ctx.ops.replace_address(own.node, own.name, address)
        if self.node.routes:
            ctx.ops.replace_routes(name, self.node.routes)
        for service in self.node.services:
            start_again(ctx, name, service)

    def _confirm(self, ctx: FaultContext, *, down: bool) -> None:
        # A veth shows the new state at once; a userspace link's carrier follows within its
        # relay's poll: read back until it agrees, within a bound, then name what disagrees.
        for own, peer in self.links:
            problem: list[str] = []

            def settled(own: Interface = own, peer: Interface = peer, problem: list[str] = problem) -> bool:
                problem[:] = [p for p in [_disagreement(ctx, own, peer, down=down)] if p is not None]
                return not problem

            if not wait_for(ctx.clock, settled, CARRIER_TIMEOUT_S, CARRIER_POLL_S):
                raise BackendError(problem[0])


def _disagreement(ctx: FaultContext, own: Interface, peer: Interface, *, down: bool) -> str | None:
    """What the backend shows of one link of a lost (or restored) node that it should not."""
    mine = ctx.ops.link_state(own.node, own.name)
    theirs = ctx.ops.link_state(peer.node, peer.name)
    if down and mine.admin_up:
        return f"{own.endpoint} is still up after node-loss; the fault did not take effect"
    if down and theirs.carrier:
        return f"{peer.endpoint} still has carrier after node-loss; the fault did not take effect"
    if not down and not mine.admin_up:
        return f"{own.endpoint} is not up after reverting node-loss"
    # A peer end that is down (another fault) leaves both without carrier: not this fault's doing.
    if not down and theirs.admin_up and not (mine.carrier and theirs.carrier):
        return f"{own.endpoint} <-> {peer.endpoint} has no carrier after reverting node-loss"
    return None


# --------------------------------------------------------------------------- node-freeze


@dataclass(frozen=True)
class NodeFreeze:
    """A node hangs: every process of it is stopped, not killed (a container is paused).

    Only processes freeze: the kernel of a namespace is the host's, so the node keeps forwarding
    packets, answering ARP and pings, and even completing TCP handshakes into the listen queues of
    its frozen services (a connect succeeds; the request gets no answer). Its interfaces keep
    carrier. Reverting continues every stopped process, confirmed when none shows the stopped
    state any more; requests queued meanwhile are then served."""

    node: Node
    reversible: bool = True
    in_force_at_first_change = False

    @classmethod
    def from_step(cls, step: NodeFreezeStep) -> NodeFreeze:
        return cls(step.node)

    @property
    def _container(self) -> bool:
        return self.node.kind == "container"

    def describe(self, reverted: bool = False) -> str:
        name = self.node.name
        if self._container:
            return f"container node {name} {'unpaused' if reverted else 'paused (docker pause); the kernel still forwards'}"
        if reverted:
            return f"node {name} thawed: its processes continued (SIGCONT)"
        return f"node {name} frozen: every process stopped (SIGSTOP); the kernel still forwards"

    def touches(self) -> list[str]:
        name = self.node.name
        if self._container:
            return [f"{name}: its container (docker pause, then unpause; the kernel keeps forwarding)"]
        return [f"{name}: every process in its namespace (SIGSTOP, then SIGCONT; the kernel keeps forwarding)"]

    def arm(self, ctx: FaultContext) -> None:
        # Its processes known before the clock: applying signals them with no /proc scan first.
        if not self._container and isinstance(ctx.ops, StopArming):
            ctx.ops.arm_stop(self.node.name)

    def apply(self, ctx: FaultContext) -> None:
        # In force once every process was seen stopped; the scan after that only proves none was missed.
        stopped = ctx.ops.stop_all(self.node.name, ctx.mark_in_force)
        ctx.log(f"  {self.node.name}: {stopped} process(es) stopped")

    def revert(self, ctx: FaultContext) -> None:
        # In force once the processes it stopped were seen running; the scan after only confirms.
        ctx.ops.continue_all(self.node.name, ctx.mark_in_force)


# --------------------------------------------------------------------------- service-stop


@dataclass(frozen=True)
class ServiceStop:
    """One service of a node stops: its process group frozen (SIGSTOP: it stops acting at once,
    seen stopped), then SIGTERM and SIGCONT, so it exits as it would on SIGTERM (a daemon's
    goodbye included), SIGKILL after a grace period; confirmed when neither its process nor any
    member of its process group is left. Reverting
    starts it again through the backend, journaled as at deploy, and is confirmed by its
    readiness check (without one: by the new process being alive)."""

    node: str
    service: Service
    reversible: bool = True
    in_force_at_first_change = False

    @classmethod
    def from_step(cls, step: ServiceStopStep) -> ServiceStop:
        return cls(step.node.name, step.service)

    def describe(self, reverted: bool = False) -> str:
        return f"service {self.node}/{self.service.name} {'started again' if reverted else 'stopped'}"

    def touches(self) -> list[str]:
        return [
            f"{self.node}/{self.service.name} service: its process group (SIGSTOP, then SIGTERM and SIGCONT, SIGKILL after {STOP_GRACE_S:g} s), then started again (journaled, readiness checked)"
        ]

    def apply(self, ctx: FaultContext) -> None:
        # In force once its processes were seen stopped (else gone); what follows only proves none was left.
        ctx.ops.stop_service(self.node, self.service.name, ctx.mark_in_force)

    def revert(self, ctx: FaultContext) -> None:
        start_again(ctx, self.node, self.service, mark=True)


register("node-loss")(NodeLoss.from_step)
register("node-freeze")(NodeFreeze.from_step)
register("service-stop")(ServiceStop.from_step)
