"""Probes from resolved records, behind the seam: what `resolve_probes` makes of the example
scenarios, the partition pairs the mesh is started for, and start / follow / snapshot / stop
through a SocketOps that is not the namespace backend's (sockets of this process's own
namespace, on 127.0.0.1), so no root and no namespace is needed."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

from drills.clock import SystemClock
from drills.engine import probe_start
from drills.probes.app import AppProbe
from drills.probes.udp_stream import UdpStream
from drills.scenario import load_scenario
from drills.scenario.probes import CommandSpec, HttpSpec, IcmpSpec, UdpStreamSpec

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LOCAL = IPv4Address("127.0.0.1")
T = TypeVar("T")


def test_probes_are_resolved_at_load() -> None:
    scenario = load_scenario(SCENARIOS / "field-command-post.yaml")
    topology = scenario.topology
    cp, dispatch = topology.node("cp").primary_address, topology.node("dispatch").primary_address
    assert cp is not None and dispatch is not None
    assert scenario.probes == (
        UdpStreamSpec(
            "dispatch-voice", "udp-stream", "cp", cp, "dispatch", 1.0, 1.0,
            target_node="dispatch", target_address=dispatch, rate_pps=1000, size_bytes=64, dscp=0, echo=True,
            late_after_s=2.0, tolerated_loss_pct=1.0,
        ),
        HttpSpec(
            "dispatch-web", "http", "cp", cp, "dispatch", 1.0, 2.0,
            target_address=dispatch, port=8080, path="/", status=200, body_contains=None, tolerated_failures_pct=10.0,
        ),
    )  # fmt: skip
    agencies = load_scenario(SCENARIOS / "agencies-partition.yaml")
    icmp = agencies.probes[2]
    assert isinstance(icmp, IcmpSpec)
    assert (icmp.source, icmp.target_address, icmp.interval_s, icmp.timeout_s) == (
        "fd-site",
        agencies.topology.node("fd-hq").primary_address,
        0.1,
        0.2,
    )
    police = agencies.probes[1]
    assert isinstance(police, UdpStreamSpec) and police.tolerated_loss_pct == 2.0


def test_the_mesh_covers_every_ordered_pair_across_the_partition() -> None:
    scenario = load_scenario(SCENARIOS / "agencies-partition.yaml")
    police, fire = ("pd-hq", "pd-site"), ("fd-hq", "fd-site")
    expected = [(p, f) for p in police for f in fire] + [(f, p) for f in fire for p in police]
    assert probe_start.partition_node_pairs(scenario) == expected
    assert probe_start.partition_node_pairs(load_scenario(SCENARIOS / "field-command-post.yaml")) == []


class LocalSockets:
    """SocketOps of this process's own namespace: every node is here. Counts the sockets each
    node opened, so a probe is seen reopening through the SocketOps it was started with."""

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()
        self.entered: Counter[str] = Counter()

    def open_socket(self, node: str, family: socket.AddressFamily, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
        self.opened[node] += 1
        return socket.socket(family, kind, proto)

    def run_in_node(self, node: str, fn: Callable[[], T]) -> T:
        self.entered[node] += 1
        return fn()


def _until(done: Callable[[], bool]) -> None:
    """Wait for `done` (a bound only against a hang: the assertions do not depend on timing)."""
    ready = threading.Event()
    for _ in range(1000):
        if done():
            return
        ready.wait(0.01)
    raise AssertionError("the probes did not get going within 10 s")


def test_probes_start_follow_and_stop_through_the_seam() -> None:
    scenario = load_scenario(SCENARIOS / "field-command-post.yaml")
    voice = scenario.probes[0]
    assert isinstance(voice, UdpStreamSpec)
    local_voice = dataclasses.replace(voice, source_address=LOCAL, target_address=LOCAL, rate_pps=200)
    check = CommandSpec("check", "command", "cp", LOCAL, None, 0.02, 1.0, command="true")
    scenario = dataclasses.replace(scenario, probes=(local_voice, check))
    sockets, clock, log = LocalSockets(), SystemClock(), list[str]()
    probes = probe_start.start_probes(scenario, sockets, clock, seed=3)
    try:
        assert sockets.opened == {"cp": 1, "dispatch": 1}
        first, second = probes  # no partition: no mesh
        assert isinstance(first, UdpStream) and isinstance(second, AppProbe)
        stream, app = first.record, second.record
        _until(lambda: len(stream.received) >= 10 and len(app.samples) >= 2)

        probe_start.follow("dispatch", probes, log.append)
        # The echo, reopened by node name: its old port first (taken here, where the old socket
        # still holds it; free in a new namespace), then the kernel's choice.
        assert sockets.opened["cp"] == 1 and sockets.opened["dispatch"] == 3
        probe_start.follow("cp", probes, log.append)
        assert sockets.opened == {"cp": 2, "dispatch": 3}
        assert [line.split(" (")[0] for line in log] == [
            "  dispatch: probe dispatch-voice reopened in its new namespace",
            "  cp: probe dispatch-voice reopened in its new namespace",
            "  cp: probe check reopened in its new namespace",
        ]
        after = len(stream.sent)
        _until(lambda: any(seq >= after for seq in stream.received) and sockets.entered["cp"] >= 2)

        health = probe_start.snapshot(probes, clock, pairs_max=12)()
        assert [(h.name, h.kind) for h in health] == [("dispatch-voice", "udp-stream"), ("check", "command")]
    finally:
        collected = probe_start.stop_probes(probes)
    assert [r.name for r in collected.streams] == ["dispatch-voice"] and collected.pairs == []
    assert [r.name for r in collected.apps] == ["check"] and collected.apps[0].error is None
    assert all(sample.ok for sample in collected.apps[0].samples)
