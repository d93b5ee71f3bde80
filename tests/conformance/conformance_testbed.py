"""The testbed of the conformance suite: two nodes, one link served by the engine under test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance_traffic import Flow, send_flow
from degrade_testing import degrade_step

from drills.engine.degrade import LinkDegrade
from drills.engine.faults import FaultContext
from drills.netns import tc
from drills.netns.backend import NetnsBackend
from drills.netns.ops import NetnsOps
from drills.netns.qdisc import HANDLE
from drills.runs import Run
from drills.scenario.resolved import Topology

TOPOLOGY = """
version: 1
name: conformance
seed: 5
topology:
  nodes:
    a: {loopback: none}
    b: {loopback: none}
  links: [{name: wire, endpoints: [a:e1, b:e1], engine: ENGINE}]
"""


@dataclass
class LinkTestbed:
    engine: str
    topology: Topology
    namespaces: dict[str, str]
    ctx: FaultContext
    run: Run
    backend: NetnsBackend
    ops: NetnsOps
    applied: LinkDegrade | None = None

    def impair(self, **params: Any) -> LinkDegrade:
        """Apply a degrade of the a-to-b direction with `params` (scenario spelling), confirmed."""
        fault = LinkDegrade.from_step(degrade_step(self.topology, {}, link="wire", direction="a-to-b", **params))
        fault.apply(self.ctx)
        self.applied = fault
        return fault

    def netem_drops(self) -> int | None:
        """What the kernel engine's netem on a:e1 dropped since it was applied (its own count of
        its loss decisions and of any overflow); None for the userspace engine (no qdisc)."""
        if self.engine != "kernel":
            return None
        qdiscs = tc.Tc(self.ops.handles.raw("a")).qdiscs(self.ops.handles.index("a", "e1"))
        return sum(q.drops for q in qdiscs if q.handle == HANDLE)

    def ends(self) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        """(namespace, interface, IPv4 address) of a and of b."""
        link = self.topology.links[0]
        assert link.a.ipv4 is not None and link.b.ipv4 is not None
        return (
            (self.namespaces["a"], link.a.name, str(link.a.ipv4.ip)),
            (self.namespaces["b"], link.b.name, str(link.b.ipv4.ip)),
        )

    def flow(self, *, count: int, rate_pps: float, payload_bytes: int = 64, drain_s: float = 1.0) -> Flow:
        link = self.topology.links[0]
        assert link.a.ipv4 is not None and link.b.ipv4 is not None
        return send_flow(
            self.namespaces["a"], str(link.a.ipv4.ip), self.namespaces["b"], str(link.b.ipv4.ip),
            count=count, rate_pps=rate_pps, payload_bytes=payload_bytes, drain_s=drain_s,
        )  # fmt: skip
