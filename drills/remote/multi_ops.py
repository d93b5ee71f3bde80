"""The node operations of a run spread over several hosts: each operation goes to the agent of
the host holding its node (`drills.remote.agent_ops.AgentOps`, one per host), and a link that
crosses hosts is cut at both ends.

A VXLAN tunnel never tells its far end that the near end went down (the complaint of every
overlay's users). So setting a cross-host link's end down also takes the carrier of the far
node's interface away, on the other host (the hidden end of its veth, in that host's wire
namespace, or its TAP there): the far node sees what a cut fibre shows, no carrier, and its
routes fail over. When the far end is cut too (a fibre cut: both ends down, the usual case),
that carrier cut is left out: the far node's own end is down, which shows the same, and closing
the hidden end, a bridge port, costs its host 1.5-2 ms of kernel time. So a set_link's far-end
cut waits for the calling thread's next operation, and a set_link of the other end first
cancels it; a far end is restored only if it was cut.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Interface, IPv6Interface
from typing import TypeVar

from drills.backend import ExecResult, Impairment, LinkState, NodeOps, OpsSpan, TimedOps
from drills.errors import BackendError
from drills.rules import Table
from drills.scenario.resolved import Route, Service, Topology, segment_node

T = TypeVar("T")
# Set the hidden end of a cross link's interface on `host` (up or down): the far node's carrier.
FarEnd = Callable[[str, str, bool], None]  # (host, link, up)


class MultiHostOps:
    """`NodeOps` over several hosts' agents, dispatched by node."""

    def __init__(
        self,
        topology: Topology,
        host_of: Mapping[str, str],
        ops_of: Mapping[str, NodeOps],
        cross_links: Sequence[str],
        far_end: FarEnd,
        engines: Mapping[str, str],
    ) -> None:
        self._host_of = dict(host_of)
        for segment in topology.segments:  # a segment's bridge is on its members' host (placement)
            self._host_of[segment_node(segment.name)] = self._host_of[segment.members[0].node]
        self._ops_of = dict(ops_of)
        self._far_end = far_end
        self._waiting = threading.local()  # per calling thread: far-end cuts not yet sent
        self._hidden_down: set[tuple[str, str]] = set()  # (host, cross link): its hidden end cut
        self._engines = dict(engines)
        self._engines.update({s.port(m.endpoint).name: "kernel" for s in topology.segments for m in s.members})
        # (node, interface) of a cross link's end -> (link, the host of the OTHER end)
        self._cross_end: dict[tuple[str, str], tuple[str, str]] = {}
        crossing = set(cross_links)
        for link in topology.links:
            if link.name in crossing:
                self._cross_end[(link.a.node, link.a.name)] = (link.name, host_of[link.b.node])
                self._cross_end[(link.b.node, link.b.name)] = (link.name, host_of[link.a.node])

    def _ops(self, node: str) -> NodeOps:
        """The node's host's operations, once this thread's waiting far-end cuts are sent."""
        self._send_far_ends()
        return self._host_ops(node)

    def _host_ops(self, node: str) -> NodeOps:
        try:
            return self._ops_of[self._host_of[node]]
        except KeyError:
            raise BackendError(f"node {node!r} is on no host of this run") from None

    def _far_ends(self) -> list[tuple[str, str, bool]]:
        waiting: list[tuple[str, str, bool]] | None = getattr(self._waiting, "far_ends", None)
        if waiting is None:
            waiting = self._waiting.far_ends = []
        return waiting

    def _send_far_ends(self) -> None:
        waiting = self._far_ends()
        while waiting:
            host, link, up = waiting.pop(0)
            if up and (host, link) not in self._hidden_down:
                continue  # never cut (its far end was cut with it): nothing to restore
            if up:
                self._hidden_down.discard((host, link))
            else:
                self._hidden_down.add((host, link))  # before: a failed cut is restored too
            self._far_end(host, link, up)

    # ------------------------------------------------------------------ links

    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        self._host_ops(node).set_link(node, ifname, up=up)
        crossing = self._cross_end.get((node, ifname))
        if crossing is None:
            return
        link, far_host = crossing
        waiting = self._far_ends()
        mine = (self._host_of[node], link, False)
        if not up and mine in waiting:
            waiting.remove(mine)  # the other end's cut of this end's carrier: this end is down
        else:
            waiting.append((far_host, link, up))

    def link_state(self, node: str, ifname: str) -> LinkState:
        return self._ops(node).link_state(node, ifname)

    def replace_address(self, node: str, ifname: str, address: IPv4Interface | IPv6Interface) -> None:
        self._ops(node).replace_address(node, ifname, address)

    def replace_routes(self, node: str, routes: Sequence[Route]) -> None:
        self._ops(node).replace_routes(node, routes)

    # ------------------------------------------------------------------ impairments and rules

    def impair(self, changes: Sequence[Impairment]) -> None:
        by_host: dict[str, list[Impairment]] = {}
        for change in changes:
            sender = change.link.a.node if change.direction == "a-to-b" else change.link.b.node
            by_host.setdefault(self._host_of[sender], []).append(change)
        self._send_far_ends()
        for host, subset in by_host.items():
            self._ops_of[host].impair(subset)

    def link_engine(self, link: str) -> str:
        return self._engines[link]

    def arm_rules(self, tables: Sequence[Table]) -> None:
        for host, subset in self._tables_by_host(tables).items():
            self._ops_of[host].arm_rules(subset)

    def apply_rules(self, tables: Sequence[Table], on_applied: Callable[[], None] | None = None) -> None:
        # `on_applied` is not called: the hosts' tables are in force at different instants.
        self._send_far_ends()
        for host, subset in self._tables_by_host(tables).items():
            self._ops_of[host].apply_rules(subset)

    def remove_rules(self, tables: Sequence[Table]) -> None:
        self._send_far_ends()
        for host, subset in self._tables_by_host(tables).items():
            self._ops_of[host].remove_rules(subset)

    def _tables_by_host(self, tables: Sequence[Table]) -> dict[str, list[Table]]:
        by_host: dict[str, list[Table]] = {}
        for table in tables:
            by_host.setdefault(self._host_of[table.node], []).append(table)
        return by_host

    # ------------------------------------------------------------------ processes and services

    def processes(self, node: str) -> list[int]:
        return self._ops(node).processes(node)

    def signal(self, node: str, pids: Sequence[int], sig: signal.Signals) -> None:
        self._ops(node).signal(node, pids, sig)

    def process_state(self, node: str, pid: int) -> str | None:
        return self._ops(node).process_state(node, pid)

    def kill_all(self, node: str) -> int:
        return self._ops(node).kill_all(node)

    def stop_all(self, node: str, on_stopped: Callable[[float], None] | None = None) -> int:
        return self._ops(node).stop_all(node)  # its host's clock: the agent's answer is the confirmation

    def continue_all(self, node: str, on_continued: Callable[[float], None] | None = None) -> None:
        self._ops(node).continue_all(node)  # its host's clock: the agent's answer is the confirmation

    def boot(self, node: str) -> bool:
        return self._ops(node).boot(node)

    def start_service(self, node: str, service: Service, on_started: Callable[[float], None] | None = None) -> int:
        return self._ops(node).start_service(node, service, on_started)

    def stop_service(self, node: str, service: str, on_stopped: Callable[[float], None] | None = None) -> None:
        self._ops(node).stop_service(node, service)  # its host's clock: the agent's answer is the confirmation

    def service_running(self, node: str, service: str) -> bool:
        return self._ops(node).service_running(node, service)

    def exec(self, node: str, command: str, timeout_s: float, on_started: Callable[[float], None] | None = None) -> ExecResult:
        return self._ops(node).exec(node, command, timeout_s, on_started)

    # ------------------------------------------------------------------ sockets

    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        raise BackendError(f"node {node!r} is on host {self._host_of.get(node)}: its probes run in that host's agent")

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        raise BackendError(f"node {node!r} is on host {self._host_of.get(node)}: its probes run in that host's agent")

    def warm(self) -> None:
        self._send_far_ends()
        for ops in self._ops_of.values():
            ops.warm()

    def lead_s(self) -> float:
        """The longest lead of any host's agent; 0 when one cannot time a step (drills.backend.TimedOps)."""
        leads = [ops.lead_s() if isinstance(ops, TimedOps) else 0.0 for ops in self._ops_of.values()]
        return 0.0 if not leads or min(leads) <= 0 else max(leads)

    def due_at(self, instant_s: float | None) -> None:
        self._send_far_ends()  # at the instant they were issued for
        for ops in self._ops_of.values():
            if isinstance(ops, TimedOps):
                ops.due_at(instant_s)

    def take_span(self) -> OpsSpan | None:
        """When this thread's operations since the last call ran, on the drill clock, over every
        host (drills.backend.TimedOps): the earliest start, the latest end and the earliest
        first change, each host's own clock bound included; None when none ran."""
        self._send_far_ends()
        spans = [span for ops in self._ops_of.values() if isinstance(ops, TimedOps) and (span := ops.take_span()) is not None]
        if not spans:
            return None
        return OpsSpan(min(s.start_s for s in spans), max(s.end_s for s in spans), min(s.first_change_s for s in spans))

    def close(self) -> None:
        self._send_far_ends()
        for ops in self._ops_of.values():
            ops.close()
