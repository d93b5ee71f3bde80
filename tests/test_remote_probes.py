"""Probes on other hosts, on real namespaces: two nodes and a veth, each node "on a host" whose
agent is an in-process `ProbeService` on a clock shifted by a known offset (+100 s, -37.5 s),
reached through a `Site` that calls it directly (no SSH). The records come back in the shape
local probes give, every instant on the controller's clock, and a drill measured through them
gives the figures a local run gives, within the stated accuracy."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from remote_probe_testing import LocalSite, site, until
from test_partition_pairs import BED as PAIRS_BED
from test_partition_pairs import check_pairs_as_intended

from drills import backends, lifecycle
from drills.backend import NodeOps
from drills.clock import Clock, SystemClock
from drills.drill_result import DrillResult
from drills.engine import probe_start
from drills.engine.drill import preflight, run_drill
from drills.engine.faults import Fault
from drills.measure import EventMetrics
from drills.netns.sockets import NamespaceSockets
from drills.records import ProbeHealth, ProbeRecord, StreamRecord
from drills.remote import remote_probes
from drills.runs import RunStore
from drills.scenario import load_scenario
from drills.scenario.resolved import Scenario

pytestmark = pytest.mark.netns

BED = """
version: 1
name: remote-probes
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: far, type: udp-stream, from: a, to: b, rate_pps: 500}
  - {name: back, type: udp-stream, from: b, to: a, rate_pps: 200}
  - {name: ping, type: icmp, from: a, to: b, interval: 50ms, timeout: 500ms}
duration: 6s
"""

CUT = """
version: 1
name: cut-2s
seed: 11
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 1000}
  - {name: ping, type: icmp, from: a, to: b, interval: 20ms, timeout: 200ms}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: wire, for: 2s}
duration: 6s
"""

AHEAD_S, BEHIND_S = 100.0, -37.5  # the two "hosts'" clocks against the controller's


@contextmanager
def _bed(tmp_path: Path, state_dir: Path) -> Iterator[tuple[Scenario, NamespaceSockets]]:
    path = tmp_path / "remote-probes.yaml"
    path.write_text(BED)
    up = lifecycle.up(path, state_dir)
    try:
        yield load_scenario(path), NamespaceSockets(up.meta.nodes)
    finally:
        lifecycle.down(state_dir, up.meta.run_id)


def _fields(record: StreamRecord | ProbeRecord) -> dict[str, type]:
    return {f.name: type(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _going(health: list[ProbeHealth]) -> bool:
    """Every probe is ok, and every stream sent more than 100 packets."""
    return all(h.state == "ok" and (h.kind != "udp-stream" or h.sent > 100) for h in health)


def test_probes_on_two_hosts_come_back_as_local_ones(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    clock = SystemClock()
    with _bed(tmp_path, state_dir) as (scenario, sockets):
        calls: list[tuple[str, str]] = []
        h1, h2 = site("h1", sockets, clock, AHEAD_S, calls), site("h2", sockets, clock, BEHIND_S, calls)
        before_s = clock.now_s()
        # The same probes, at once: locally (as on one machine) and through the two "hosts".
        local = probe_start.start_probes(scenario, sockets, clock, seed=1)
        try:
            running = remote_probes.start(scenario, {"a": h1, "b": h2}, seed=2)
            try:
                # Each stream's echo on the other host first; then the probes at their sources.
                assert calls == [("h2", "echo"), ("h1", "echo"), ("h1", "stream"), ("h2", "stream"), ("h1", "app")]
                until(lambda: _going(running.health(clock.now_s())), "every remote probe to be ok")
            finally:
                remote_records, pairs = running.stop()
        finally:
            collected = probe_start.stop_probes(local)
        after_s = clock.now_s()
    assert pairs == []
    local_records: list[StreamRecord | ProbeRecord] = [*collected.streams, *collected.apps]
    assert [(type(r), r.name, _fields(r)) for r in remote_records] == [(type(r), r.name, _fields(r)) for r in local_records]
    far, back, ping = remote_records
    assert isinstance(far, StreamRecord) and isinstance(back, StreamRecord) and isinstance(ping, ProbeRecord)
    for stream in (far, back):
        # A quiet veth loses nothing, and one drain covers both streams on both hosts.
        assert len(stream.sent) > 100 and sorted(stream.received) == list(range(len(stream.sent)))
        assert stream.duplicates == stream.reordered == 0
        # On the controller's clock (the hosts' were 100 s ahead and 37.5 s behind).
        assert before_s < stream.sent[0] and max(stream.received.values()) < after_s
        assert all(0 < stream.received[i] - sent < 0.5 for i, sent in enumerate(stream.sent))
    assert ping.error is None and all(s.ok for s in ping.samples) and len(ping.samples) >= 2
    assert all(before_s < s.sent_s < after_s for s in ping.samples)
    assert [(p.probe, p.clock_host, p.hosts) for p in running.placements] == [
        ("far", "h1", ("h1", "h2")),
        ("back", "h2", ("h2", "h1")),
        ("ping", "h1", ("h1",)),
    ]
    assert not h1.service._running and not h2.service._running


def test_both_nodes_on_one_host_use_the_streams_own_echo(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    clock = SystemClock()
    with _bed(tmp_path, state_dir) as (scenario, sockets):
        calls: list[tuple[str, str]] = []
        h1 = site("h1", sockets, clock, AHEAD_S, calls)
        running = remote_probes.start(scenario, {"a": h1, "b": h1}, seed=2)
        try:
            assert calls == [("h1", "stream"), ("h1", "stream"), ("h1", "app")]  # no echo asked for
            until(lambda: _going(running.health(clock.now_s())), "every probe to be ok")
        finally:
            records, _pairs = running.stop()
    far = records[0]
    assert isinstance(far, StreamRecord) and sorted(far.received) == list(range(len(far.sent)))
    assert {p.hosts for p in running.placements} == {("h1",)}


def _remote_starter(sites: dict[str, LocalSite], calls: list[tuple[str, str]], clock: Clock) -> Any:
    """The engine's ProbeStarter, as the lead wires it: sites made on the run's node operations."""

    def start(scenario: Scenario, ops: NodeOps, _faults: Mapping[str, Fault], _clock: Clock, seed: int) -> Any:
        h1, h2 = site("h1", ops, clock, AHEAD_S, calls), site("h2", ops, clock, BEHIND_S, calls)
        sites.update(a=h1, b=h2)
        return remote_probes.start(scenario, {"a": h1, "b": h2}, seed)

    return start


def _drill(path: Path, state_dir: Path, probes: Any = None) -> DrillResult:
    """`lifecycle.run`, with the probe starter given (None: the local probes)."""
    scenario = load_scenario(path)
    clock = SystemClock()
    backend = backends.for_topology(scenario.topology, lambda _m: None, service_cwd=path.parent, seed=11, clock=clock)
    preflight(scenario, backend.capabilities)
    run = lifecycle._new_run(scenario, backend, RunStore(state_dir))
    return run_drill(scenario, backend, clock, run, lambda _m: None, seed=scenario.seed or secrets.randbits(32), probes=probes)


def _cut(result: DrillResult, probe: str) -> tuple[EventMetrics, float, float, float]:
    """The cut's metrics for `probe`, the span the link was down as the engine issued it, and
    the shortest and longest it can have been down (issued and confirmed instants)."""
    apply, revert = (s for s in result.steps if s.label == "cut")
    metrics = next(m for m in result.metrics if m.probe == probe and m.kind == "apply")
    return metrics, revert.issued_s - apply.issued_s, revert.issued_s - apply.confirmed_s, revert.confirmed_s - apply.issued_s


def test_a_cut_measured_on_two_hosts_equals_the_local_figures(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(CUT)
    sites: dict[str, LocalSite] = {}
    calls: list[tuple[str, str]] = []
    remote = _drill(path, state_dir, _remote_starter(sites, calls, SystemClock()))
    local = _drill(path, state_dir)
    assert ("h2", "echo") in calls and not sites["a"].service._running and not sites["b"].service._running
    for side, result in (("remote", remote), ("local", local)):
        assert not result.inconclusive, (side, result.baselines)
        cut, _span_s, shortest_s, longest_s = _cut(result, "stream")
        # Loss-derived outage, no clock involved: the link was down from some instant in the
        # apply's [issued, confirmed] to some instant in the revert's, give or take a packet gap
        # and the sender's jitter (the accuracy less the apply's lag), on either side.
        apply = next(s for s in result.steps if s.label == "cut" and s.kind == "apply")
        jitter_s = cut.accuracy_s - (apply.effect_by_s - apply.issued_s)  # less the apply's window
        assert shortest_s - jitter_s <= cut.outage_s <= longest_s + jitter_s, (side, cut, shortest_s, longest_s)
        # Recovery relates the probe's instants to the fault's: through the mapped instants it
        # is within the same accuracy (the offsets here are known exactly: bound 1 ms stated,
        # 0 in truth) as locally.
        assert cut.time_to_recover_s is not None and cut.time_to_detect_s is not None
        assert shortest_s - cut.accuracy_s <= cut.time_to_recover_s <= longest_s + cut.accuracy_s, (side, cut, shortest_s, longest_s)
        assert cut.time_to_detect_s <= cut.accuracy_s, (side, cut)
    # The two runs' figures agree within both accuracies plus the difference of their spans (the
    # scheduler issued each run's revert a little differently late).
    r_cut, r_span, r_short, r_long = _cut(remote, "stream")
    l_cut, l_span, l_short, l_long = _cut(local, "stream")
    slack_s = max(r_long, l_long) - min(r_short, l_short) + r_cut.accuracy_s + l_cut.accuracy_s
    assert abs(r_cut.outage_s - l_cut.outage_s) <= slack_s, (r_cut, r_span, l_cut, l_span)
    availability = (remote.availability["stream"], local.availability["stream"])
    assert availability[0].unavailable == availability[1].unavailable == 2, availability
    # The icmp probe's figures (sample instants mapped from h1's clock) likewise.
    r_ping, _, _, _ = _cut(remote, "ping")
    l_ping, _, _, _ = _cut(local, "ping")
    assert r_ping.time_to_recover_s is not None and l_ping.time_to_recover_s is not None
    slack_s = abs(r_span - l_span) + r_ping.accuracy_s + l_ping.accuracy_s
    assert abs(r_ping.outage_s - l_ping.outage_s) <= slack_s, (r_ping, l_ping)
    assert abs(r_ping.time_to_recover_s - l_ping.time_to_recover_s) <= slack_s, (r_ping, l_ping)


def test_the_pair_mesh_runs_across_hosts(tmp_path: Path, state_dir: Path, host_snapshot: Any) -> None:
    """tests/test_partition_pairs.py's drill, with a1, a2 and the hub x on one host and b1 on
    the other: every pair across the partition crosses hosts. The mesh's records are put
    together from both hosts' halves, and judged as on one machine."""
    path = tmp_path / "pairs.yaml"
    path.write_text(PAIRS_BED)
    calls: list[tuple[str, str]] = []
    made: dict[str, Any] = {}

    def start(scenario: Scenario, ops: NodeOps, _faults: Mapping[str, Fault], _clock: Clock, seed: int) -> Any:
        clock = SystemClock()
        h1, h2 = site("h1", ops, clock, AHEAD_S, calls), site("h2", ops, clock, BEHIND_S, calls)
        made["running"] = remote_probes.start(scenario, {"x": h1, "a1": h1, "a2": h1, "b1": h2}, seed)
        return made["running"]

    result = _drill(path, state_dir, start)
    assert [c for c in calls if c[1] == "mesh"] == [("h1", "mesh"), ("h2", "mesh")]
    check_pairs_as_intended(result)  # detection and recovery: send instants mapped back
    # One-way delays across the two clocks, mapped back: as small as on one machine.
    for record in result.pair_records:
        assert all(0 < record.received[i] - sent < 0.5 for i, sent in enumerate(record.sent) if i in record.received)
    placements = {p.probe: p for p in made["running"].pair_placements}
    assert placements["a1->b1"].hosts == ("h1", "h2") and placements["a1->b1"].bound_s == 0.002
