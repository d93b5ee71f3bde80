"""Node faults (node-loss, node-freeze, service-stop) against a fake NodeOps and a FakeClock: the
exact order of operations, the namespace announcement, and the error when a read-back
disagrees. No kernel, no Docker, no sleeping: deterministic."""

from __future__ import annotations

import random
from collections.abc import Sequence
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from typing import Any, cast

import pytest

from drills.backend import LinkState, NodeOps
from drills.clock import FakeClock
from drills.engine.fault import CARRIER_TIMEOUT_S
from drills.engine.faults import FaultContext, build
from drills.engine.node_faults import NodeFreeze, NodeLoss, ServiceStop
from drills.errors import BackendError
from drills.scenario.resolved import Interface, Link, Node, Readiness, Route, Service
from drills.scenario.steps import NodeFreezeStep, NodeLossStep, ServiceStopStep, Timing

HTTP = Service("http", "exec httpd", (), Readiness(8080, None, 5.0))


def iface(node: str, name: str, n: int) -> Interface:
    return Interface(node, name, IPv4Interface(f"10.0.{n}.1/30"), IPv6Interface(f"fd00::{n}:1/64"), None)


# a — b — c; b is the node the faults hit.
B_A, A_B = iface("b", "a", 1), iface("a", "b", 1)
B_C, C_B = iface("b", "c", 2), iface("c", "b", 2)
ROUTE = Route(ip_network("192.0.2.0/24"), ip_address("10.0.2.2"), None, 10)
B = Node("b", "netns", None, (B_A, B_C), (ROUTE,), (), (HTTP,))
LINKS = ((B_A, A_B), (B_C, C_B))
LINK_AB = Link("ab", A_B, B_A, None)


class FakeOps:
    """Links as admin states (carrier: both ends up), services as running flags; every call
    recorded, in order."""

    def __init__(self, *, replaced: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.admin: dict[tuple[str, str], bool] = {(i.node, i.name): True for i in (B_A, A_B, B_C, C_B)}
        self.stuck_carrier: set[tuple[str, str]] = set()  # ends that keep carrier whatever happens
        self.running: dict[tuple[str, str], bool] = {("b", "http"): True}
        self.replaced = replaced
        self.dies_on_start = False
        self.seen_at_s: float | None = None  # when stop_all / continue_all saw every process stopped / running

    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        self.calls.append(("set_link", f"{node}:{ifname}", up))
        self.admin[(node, ifname)] = up

    def link_state(self, node: str, ifname: str) -> LinkState:
        peer = {("b", "a"): ("a", "b"), ("a", "b"): ("b", "a"), ("b", "c"): ("c", "b"), ("c", "b"): ("b", "c")}[(node, ifname)]
        carrier = (node, ifname) in self.stuck_carrier or (self.admin[(node, ifname)] and self.admin[peer])
        return LinkState(self.admin[(node, ifname)], carrier)

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        self.calls.append(("replace_address", f"{node}:{ifname}", str(address)))

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        self.calls.append(("replace_routes", node, tuple(routes)))

    def kill_all(self, node: str) -> int:
        self.calls.append(("kill_all", node))
        self.running = {key: False for key in self.running}
        return 3

    def stop_all(self, node: str, on_stopped: Any = None) -> int:
        self.calls.append(("stop_all", node))
        if on_stopped is not None and self.seen_at_s is not None:
            on_stopped(self.seen_at_s)
        return 2

    def continue_all(self, node: str, on_continued: Any = None) -> None:
        self.calls.append(("continue_all", node))
        if on_continued is not None and self.seen_at_s is not None:
            on_continued(self.seen_at_s)

    def arm_stop(self, node: str) -> None:
        self.calls.append(("arm_stop", node))

    def boot(self, node: str) -> bool:
        self.calls.append(("boot", node))
        replaced, self.replaced = self.replaced, False  # a second boot finds it booted
        return replaced

    def service_running(self, node: str, service: str) -> bool:
        return self.running[(node, service)]

    def start_service(self, node: str, service: Service, on_started: Any = None) -> int:
        self.calls.append(("start_service", node, service.name))
        self.running[(node, service.name)] = not self.dies_on_start
        return 4242

    def stop_service(self, node: str, service: str, on_stopped: Any = None) -> None:
        self.calls.append(("stop_service", node, service))
        if not self.running[(node, service)]:
            raise BackendError(f"service {node}/{service} is not running; nothing to stop")
        self.running[(node, service)] = False


def context(ops: FakeOps) -> tuple[FaultContext, list[str], FakeClock]:
    log: list[str] = []
    clock = FakeClock()
    ctx = FaultContext(cast(NodeOps, ops), clock, log.append, random.Random(0))
    ctx.namespace_listeners.append(lambda node: ops.calls.append(("namespace_replaced", node)))
    return ctx, log, clock


def loss() -> NodeLoss:
    fault = build(NodeLossStep(0, "crash", "node-loss", Timing(1.0), B, LINKS))
    assert isinstance(fault, NodeLoss)
    return fault


# --------------------------------------------------------------------------- node-loss


def test_node_loss_downs_the_links_first_then_kills_and_confirms() -> None:
    ops = FakeOps()
    ctx, log, _clock = context(ops)
    loss().apply(ctx)
    # The links first: the event instant is when the node fell off the network.
    assert ops.calls == [("set_link", "b:a", False), ("set_link", "b:c", False), ("kill_all", "b")]
    assert log == ["  b: 3 process(es) killed"]


def test_node_loss_is_in_force_once_its_links_read_back_down_before_the_kill_and_its_wait() -> None:
    ops = FakeOps()
    ctx, _log, clock = context(ops)
    kill_s = 0.007  # the kill and its wait for every process to be gone, on the clock
    real_kill = ops.kill_all

    def slow_kill(node: str) -> int:
        assert ctx.in_force_s == clock.now_s(), "not marked in force before the kill"
        assert not any(ops.link_state(own.node, own.name).admin_up for own, _peer in LINKS)
        clock.t += kill_s
        return real_kill(node)

    ops.kill_all = slow_kill  # type: ignore[method-assign]
    started_s = clock.now_s()
    loss().apply(ctx)
    assert ctx.in_force_s == started_s and clock.now_s() == started_s + kill_s
    ctx.in_force_s = None
    marked: list[float | None] = []
    real_start = ops.start_service

    def start(node: str, service: Service, on_started: Any = None) -> int:
        marked.append(ctx.in_force_s)
        return real_start(node, service, on_started)

    ops.start_service = start  # type: ignore[method-assign]
    loss().revert(ctx)
    # The restore is in force once the node is back on the network, before its services start.
    assert ctx.in_force_s is not None and marked and all(m == ctx.in_force_s for m in marked)


def test_node_loss_revert_on_a_namespace_node_in_order() -> None:
    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    fault = loss()
    fault.apply(ctx)
    ops.calls.clear()
    fault.revert(ctx)
    assert ops.calls == [
        ("boot", "b"),  # False: no announcement
        ("set_link", "b:a", True),
        ("set_link", "b:c", True),
        ("replace_address", "b:a", "10.0.1.1/30"),
        ("replace_address", "b:a", "fd00::1:1/64"),
        ("replace_address", "b:c", "10.0.2.1/30"),
        ("replace_address", "b:c", "fd00::2:1/64"),
        ("replace_routes", "b", (ROUTE,)),
        ("start_service", "b", "http"),
    ]


def test_node_loss_revert_announces_a_new_namespace_before_confirming() -> None:
    ops = FakeOps(replaced=True)
    ctx, _log, _clock = context(ops)
    fault = loss()
    fault.apply(ctx)
    ops.calls.clear()
    fault.revert(ctx)
    assert ops.calls[:4] == [("boot", "b"), ("namespace_replaced", "b"), ("set_link", "b:a", True), ("set_link", "b:c", True)]
    # Retried (the undo stack at teardown): booted already, so no second announcement, and a
    # service still running is not started twice.
    ops.calls.clear()
    fault.revert(ctx)
    assert ("namespace_replaced", "b") not in ops.calls and ("start_service", "b", "http") not in ops.calls


def test_node_loss_fails_when_a_peer_keeps_carrier_after_the_bound() -> None:
    ops = FakeOps()
    ops.stuck_carrier.add(("c", "b"))
    ctx, _log, clock = context(ops)
    start_s = clock.now_s()
    with pytest.raises(BackendError, match=r"^c:b still has carrier after node-loss; the fault did not take effect$"):
        loss().apply(ctx)
    # Read back on the drill clock until the bound, not once and not forever.
    assert CARRIER_TIMEOUT_S < clock.now_s() - start_s < CARRIER_TIMEOUT_S + 0.01


def test_node_loss_fails_when_its_own_end_stays_up() -> None:
    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    ops.set_link = lambda node, ifname, *, up: None  # type: ignore[method-assign]  # ignored by the "kernel"
    with pytest.raises(BackendError, match=r"^b:a is still up after node-loss"):
        loss().apply(ctx)


def test_node_loss_revert_fails_without_carrier_but_not_when_the_peer_is_held_down() -> None:
    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    fault = loss()
    fault.apply(ctx)
    ops.admin[("c", "b")] = False  # another fault holds c's end down: not this fault's doing
    fault.revert(ctx)

    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    fault.apply(ctx)
    real_state = ops.link_state
    ops.link_state = lambda node, ifname: (  # type: ignore[method-assign]
        LinkState(True, False) if (node, ifname) == ("b", "a") else real_state(node, ifname)
    )
    with pytest.raises(BackendError, match=r"^b:a <-> a:b has no carrier after reverting node-loss$"):
        fault.revert(ctx)


def test_node_loss_revert_fails_when_a_restarted_service_dies() -> None:
    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    fault = loss()
    fault.apply(ctx)
    ops.dies_on_start = True
    with pytest.raises(BackendError, match=r"^service b/http exited right after it was started again \(pid 4242\)$"):
        fault.revert(ctx)


def test_node_loss_texts() -> None:
    fault = loss()
    assert fault.describe() == "node b lost: every process killed, b:a, b:c down"
    assert fault.describe(reverted=True) == "node b restored: b:a, b:c up, routes re-installed, services http started again"
    assert fault.touches()[0] == "b: every process in its namespace (SIGKILL)"
    assert "a:b carrier (lost)" in fault.touches() and "c:b carrier (lost)" in fault.touches()


# --------------------------------------------------------------------------- node-freeze and service-stop


def test_node_freeze_stops_then_continues() -> None:
    ops = FakeOps()
    ctx, log, _clock = context(ops)
    fault = build(NodeFreezeStep(0, None, "node-freeze", Timing(1.0), B))
    assert isinstance(fault, NodeFreeze)
    fault.apply(ctx)
    fault.revert(ctx)
    assert ops.calls == [("stop_all", "b"), ("continue_all", "b")]
    assert log == ["  b: 2 process(es) stopped"]
    assert fault.describe().endswith("the kernel still forwards")


def test_node_freeze_arms_and_marks_the_instants_the_backend_tells() -> None:
    """Armed before the clock through the backend's arm_stop; applying and reverting each mark
    in force at the instant the backend saw every process stopped / running again (earlier than
    the return, which only confirms)."""
    ops = FakeOps()
    ctx, _log, clock = context(ops)
    fault = build(NodeFreezeStep(0, None, "node-freeze", Timing(1.0), B))
    assert isinstance(fault, NodeFreeze)
    fault.arm(ctx)
    for act in (fault.apply, fault.revert):
        ctx.in_force_s, ops.seen_at_s = None, clock.now_s()
        clock.t += 0.003  # the confirming scan
        act(ctx)
        assert ctx.in_force_s == ops.seen_at_s
    assert ops.calls == [("arm_stop", "b"), ("stop_all", "b"), ("continue_all", "b")]


def test_service_stop_stops_and_starts_again_once() -> None:
    ops = FakeOps()
    ctx, _log, _clock = context(ops)
    fault = build(ServiceStopStep(0, None, "service-stop", Timing(1.0), B, HTTP))
    assert isinstance(fault, ServiceStop) and fault.describe() == "service b/http stopped"
    fault.apply(ctx)
    with pytest.raises(BackendError, match="not running"):
        fault.apply(ctx)
    fault.revert(ctx)
    fault.revert(ctx)  # as the undo stack may retry it: a running service is not started twice
    assert ops.calls == [("stop_service", "b", "http"), ("stop_service", "b", "http"), ("start_service", "b", "http")]
