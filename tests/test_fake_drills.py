"""Complete drills on the fake backend and the simulated clock (tests/fakes.py): no kernel, no
root, milliseconds each, and the recovery arithmetic asserted exactly.

Probes send 128 packets/s and the drill clock starts at 1000 s, so every send instant, fault
instant and figure is a binary fraction: the expected values are exact, not approximate.
Blackhole, partition, node loss and degrade are written against the seam (drills/backend.py):
they pass once their faults act through `ctx.ops` (h/rules, h/nodes, h/impair).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from fakes import FakeBackend, FakeOps, SimClock, World, all_capabilities, in_force

from drills import lifecycle
from drills.backend import NETEM, NFTABLES, TUNTAP, LinkState, NodeOps, OpsSpan
from drills.clock import Clock
from drills.engine.analysis import analyse_drill
from drills.engine.drill import DrillResult, preflight, run_drill
from drills.engine.timeline import expand
from drills.errors import BackendError, ScenarioError
from drills.measure import EventMetrics
from drills.runs import Run, RunStore
from drills.scenario import load_scenario

T0 = 1000.0  # SimClock's start: the drill clock's zero
RATE = 128  # packets per second: 1/128 s is exact in binary

# A command post (cp) reaches dispatch over fibre, with a satellite link as backup.
FIBRE = """
version: 1
name: fake-fibre
seed: 1
topology:
  nodes:
    cp:
      routes:
        - {to: dispatch, via: eoc:fibre0, metric: 10}
        - {to: dispatch, via: eoc:sat0, metric: 100}
    eoc:
      routes:
        - {to: cp, via: cp:fibre0, metric: 10}
        - {to: cp, via: cp:sat0, metric: 100}
        - {to: dispatch, via: dispatch:lan0}
    dispatch:
      routes:
        - {to: default, via: eoc:lan0}
  links:
    - {name: fibre, endpoints: [cp:fibre0, eoc:fibre0]}
    - {name: vsat, endpoints: [cp:sat0, eoc:sat0]}
    - {name: eoc-lan, endpoints: [eoc:lan0, dispatch:lan0]}
probes:
  - {name: voice, type: udp-stream, from: cp, to: dispatch, rate_pps: 128}
timeline:
  - {at: 3s, fault: note, text: "Excavator working near the fibre route"}
  - TIMELINE
expect:
  - {name: failover, probe: voice, step: cut, max_outage: 300ms}
duration: 15s
"""
WITH_BACKUP = {"voice": [["fibre", "eoc-lan"], ["vsat", "eoc-lan"]]}
NO_BACKUP = {"voice": [["fibre", "eoc-lan"]]}

# Two routers between a and b; r2 is the backup.
ROUTERS = """
version: 1
name: fake-routers
seed: 1
topology:
  nodes:
    a: {loopback: 192.0.2.1/32, routes: [{to: b, via: r1:a, metric: 10}, {to: b, via: r2:a, metric: 100}]}
    r1: {routes: [{to: a, via: a:r1}, {to: b, via: b:r1}]}
    r2: {routes: [{to: a, via: a:r2}, {to: b, via: b:r2}]}
    b: {loopback: 192.0.2.2/32, routes: [{to: a, via: r1:b, metric: 10}, {to: a, via: r2:b, metric: 100}]}
  links:
    - {name: a-r1, endpoints: [a:r1, r1:a]}
    - {name: r1-b, endpoints: [r1:b, b:r1]}
    - {name: a-r2, endpoints: [a:r2, r2:a]}
    - {name: r2-b, endpoints: [r2:b, b:r2]}
probes:
  - {name: flow, type: udp-stream, from: a, to: b, rate_pps: 128}
  - {name: ping, type: icmp, from: a, to: b, interval: 250ms, timeout: 500ms}
timeline:
  - TIMELINE
duration: 12s
"""
VIA_R1_THEN_R2 = {"flow": [["a-r1", "r1-b"], ["a-r2", "r2-b"]], "ping": [["a-r1", "r1-b"], ["a-r2", "r2-b"]]}

# A hub and three leaves, for a partition.
HUB = """
version: 1
name: fake-hub
seed: 1
topology:
  nodes:
    hub: {routes: [{to: x, via: x:hub}, {to: y, via: y:hub}, {to: z, via: z:hub}]}
    x: {routes: [{to: default, via: hub:x}]}
    y: {routes: [{to: default, via: hub:y}]}
    z: {routes: [{to: default, via: hub:z}]}
  links:
    - {name: hub-x, endpoints: [hub:x, x:hub]}
    - {name: hub-y, endpoints: [hub:y, y:hub]}
    - {name: hub-z, endpoints: [hub:z, z:hub]}
probes:
  - {name: x-to-y, type: udp-stream, from: x, to: y, rate_pps: 128}
  - {name: y-to-z, type: udp-stream, from: y, to: z, rate_pps: 128}
timeline:
  - TIMELINE
duration: 10s
"""


def _drill(
    tmp_path: Path, state_dir: Path, text: str, step: str, backend: FakeBackend
) -> tuple[DrillResult, list[str]]:
    path = tmp_path / "fake.yaml"
    path.write_text(text.replace("TIMELINE", step))
    scenario = load_scenario(path)
    preflight(scenario, backend.capabilities)
    run = RunStore(state_dir).create(scenario.name, path)
    log: list[str] = []
    result = run_drill(scenario, backend, SimClock(T0), run, log.append, seed=1, probes=backend.probe_starter())
    assert backend.torn_down and not run.dir.exists()  # torn down and removed: nothing was left
    return result, log


def _metric(result: DrillResult, probe: str, label: str, kind: str = "apply") -> EventMetrics:
    return next(m for m in result.metrics if m.probe == probe and m.event == label and m.kind == kind)


def _ops(backend: FakeBackend, *names: str) -> list[tuple[float, str, tuple[object, ...]]]:
    assert backend.world is not None
    return [(op.at_s - T0, op.name, op.args) for op in backend.world.ops if op.name in names]


# --------------------------------------------------------------------------- link-down


def test_link_down_with_failover_loses_exactly_the_convergence_time(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=WITH_BACKUP, convergence_s=0.25)
    result, _log = _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}", backend)
    # The steps were issued and confirmed at their scheduled instants: the fake reads back at once.
    assert [(s.kind, s.label, s.scheduled_s, s.issued_s, s.confirmed_s) for s in result.steps] == [
        ("apply", "step0", 3.0, 3.0, 3.0),
        ("apply", "cut", 5.0, 5.0, 5.0),
        ("revert", "cut", 10.0, 10.0, 10.0),
    ]
    cut = _metric(result, "voice", "cut")
    # Routing sees the lost carrier 0.25 s late: the 32 packets sent meanwhile took the cut fibre.
    assert (cut.sent, cut.lost, cut.outage_s, cut.max_loss_period_s) == (5 * RATE, 32, 0.25, 0.25)
    assert (cut.time_to_detect_s, cut.time_to_recover_s, cut.recovered_during_event) == (0.0, 0.25, True)
    assert cut.accuracy_s == 1 / RATE  # a packet gap; no sender jitter, no confirmation lag
    back = _metric(result, "voice", "cut", "revert")
    # Back to fibre: routing keeps the satellite until it sees the fibre up, which never dropped a packet.
    assert (back.sent, back.lost, back.outage_s, back.time_to_recover_s) == (5 * RATE, 0, 0.0, 0.0)
    # From the 1 s warm-up to 25 ms before the cut (the least guard: drills.engine.analysis).
    assert result.baselines["voice"].clean and result.baselines["voice"].sent == 4 * RATE - 3
    assert [v.passed for v in result.verdicts] == [True] and result.passed
    assert result.t0_s == T0 and result.duration_s == 15.0 and len(result.records[0].sent) == 15 * RATE


def test_link_down_without_backup_is_out_for_the_down_time(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=NO_BACKUP)
    result, log = _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}", backend)
    cut = _metric(result, "voice", "cut")
    assert (cut.lost, cut.outage_s, cut.max_loss_period_s) == (5 * RATE, 5.0, 5.0)
    # Lost from the instant the fibre went down; back with the first packet after it came up.
    assert (cut.time_to_detect_s, cut.time_to_recover_s, cut.recovered_during_event) == (0.0, 5.0, False)
    assert [v.passed for v in result.verdicts] == [False] and not result.passed
    # Ends down, both ends confirmed without carrier, up again, confirmed, and nothing else.
    assert _ops(backend, "set_link") == [
        (5.0, "set_link", ("cp", "fibre0", False)),
        (5.0, "set_link", ("eoc", "fibre0", False)),
        (10.0, "set_link", ("cp", "fibre0", True)),
        (10.0, "set_link", ("eoc", "fibre0", True)),
    ]
    assert any("drill clock started; 1 probe(s), 15 s" in line for line in log)


def test_a_fault_that_does_not_take_effect_is_reverted_and_the_run_torn_down(tmp_path: Path, state_dir: Path) -> None:
    class Stuck(FakeOps):  # the fibre's eoc end never loses carrier
        def link_state(self, node: str, ifname: str):  # type: ignore[no-untyped-def]
            state = super().link_state(node, ifname)
            return type(state)(state.admin_up, True) if node == "eoc" else state

    backend = FakeBackend(paths=NO_BACKUP)
    backend.ops = lambda run, clock: Stuck(backend.world, clock)  # type: ignore[arg-type,method-assign]
    with pytest.raises(BackendError, match="eoc:fibre0 still has carrier after link-down"):
        _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}", backend)
    assert backend.torn_down
    # The confirmation polled for its bound (1 s) on the drill clock, then the undo stack put the link back.
    downs = _ops(backend, "set_link")
    assert [a for _t, _n, a in downs] == [
        ("cp", "fibre0", False), ("eoc", "fibre0", False), ("cp", "fibre0", True), ("eoc", "fibre0", True)
    ]  # fmt: skip
    assert downs[2][0] > 6.0


# --------------------------------------------------------------------------- filters (h/rules)


def test_packets_a_fault_catches_in_flight_do_not_make_the_baseline_dirty(tmp_path: Path, state_dir: Path) -> None:
    """On a busy machine a packet can sit queued for milliseconds (softirq work behind a busy CPU,
    a vCPU its host did not run): the packets sent in the last 25 ms before the first fault may
    be lost to it in flight. They are in neither the baseline nor the fault's event; a loss
    earlier than that still makes the baseline dirty."""
    backend = FakeBackend(paths=NO_BACKUP)
    result, _log = _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}", backend)
    scenario = load_scenario(tmp_path / "fake.yaml")  # the file _drill ran
    [record] = result.records

    def analysed(lost_from_s: float) -> DrillResult:
        caught = copy.deepcopy(record)
        for sequence, sent_s in enumerate(caught.sent):
            if T0 + lost_from_s <= sent_s < T0 + 5.0:  # sent before the cut, lost to it in flight
                caught.received.pop(sequence, None)
        again = DrillResult(result.scenario, result.run_id, result.seed, steps=list(result.steps))
        analyse_drill(again, scenario, [caught], [], T0, expand(scenario, 1), result.duration_s)
        return again

    within = analysed(5.0 - 0.024)  # 3 packets, 24 ms before it
    assert within.baselines["voice"].clean and not within.inconclusive
    assert _metric(within, "voice", "cut").lost == 5 * RATE  # the event's own figures are untouched
    assert not analysed(5.0 - 0.04).baselines["voice"].clean  # lost 40 ms before it: a dirty baseline


def test_blackhole_keeps_carrier_so_routing_never_fails_over(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=WITH_BACKUP, convergence_s=0.25)
    result, _log = _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: blackhole, link: fibre, for: 3s}", backend)
    cut = _metric(result, "voice", "cut")
    assert (cut.lost, cut.outage_s, cut.time_to_detect_s, cut.time_to_recover_s) == (3 * RATE, 3.0, 0.0, 3.0)
    assert not cut.recovered_during_event
    applied, removed = _ops(backend, "apply_rules"), _ops(backend, "remove_rules")
    assert [t for t, _n, _a in applied] == [5.0] and [t for t, _n, _a in removed] == [8.0]
    assert backend.world is not None and backend.world.state.tables == ()


def test_partition_cuts_across_groups_only(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend()
    step = "{id: split, at: 4s, fault: partition, groups: [[x], [y, z]], for: 2s}"
    result, _log = _drill(tmp_path, state_dir, HUB, step, backend)
    across, within = _metric(result, "x-to-y", "split"), _metric(result, "y-to-z", "split")
    assert (across.lost, across.outage_s, across.time_to_recover_s) == (2 * RATE, 2.0, 2.0)
    assert (within.lost, within.outage_s, within.time_to_recover_s) == (0, 0.0, 0.0)
    # Every ordered pair across the groups is cut, as intended, and heals.
    assert sorted((p.source, p.target, p.expected_cut) for p in result.pairs) == [
        ("x", "y", True), ("x", "z", True), ("y", "x", True), ("z", "x", True)
    ]  # fmt: skip
    assert all(p.matches for p in result.pairs)


def test_one_way_partition_cuts_one_direction(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend()
    step = "{id: split, at: 4s, fault: partition, groups: [[x], [y, z]], one_way: true, for: 2s}"
    result, _log = _drill(tmp_path, state_dir, HUB, step, backend)
    # x's packets never reach y; the stream is a round trip, so it is cut too.
    assert _metric(result, "x-to-y", "split").outage_s == 2.0
    cut = {(p.source, p.target): p.expected_cut for p in result.pairs}
    assert cut == {("x", "y"): True, ("x", "z"): True, ("y", "x"): False, ("z", "x"): False}
    assert all(p.matches for p in result.pairs)


# --------------------------------------------------------------------------- nodes (h/nodes)


def test_node_loss_fails_over_and_the_node_comes_back(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=VIA_R1_THEN_R2, convergence_s=0.5)
    result, _log = _drill(tmp_path, state_dir, ROUTERS, "{id: crash, at: 4s, fault: node-loss, node: r1, for: 4s}", backend)
    flow = _metric(result, "flow", "crash")
    assert (flow.lost, flow.outage_s, flow.time_to_detect_s, flow.time_to_recover_s) == (RATE // 2, 0.5, 0.0, 0.5)
    ping = _metric(result, "ping", "crash")  # samples at 4.0 and 4.25 s are lost; 4.5 s on answer
    assert (ping.lost, ping.time_to_detect_s, ping.time_to_recover_s) == (2, 0.0, 0.5)
    back = _metric(result, "flow", "crash", "revert")
    assert back.lost == 0
    names = [n for _t, n, _a in _ops(backend, "set_link", "kill_all", "boot")]
    assert names.index("kill_all") > names.index("set_link") and "boot" in names
    assert [t for t, n, _a in _ops(backend, "kill_all", "boot")] == [4.0, 8.0]
    assert backend.world is not None and backend.world.state.dead == frozenset()
    assert backend.world.state.down == frozenset()


class _SlowKillOps(FakeOps):
    KILL_S = 0.0078125  # the kill and its wait for every process to be gone (1/128 s: exact)

    def kill_all(self, node: str) -> int:
        self.clock.sleep_until(self.clock.now_s() + self.KILL_S)
        return super().kill_all(node)


class _SlowKillBackend(FakeBackend):
    def ops(self, run: Run, clock: Clock) -> NodeOps:
        assert self.world is not None
        return _SlowKillOps(self.world, clock, self.containers)


def test_node_loss_is_in_force_before_its_kill_and_the_kill_does_not_widen_the_accuracy(
    tmp_path: Path, state_dir: Path
) -> None:
    backend = _SlowKillBackend(paths={"flow": [["a-r1", "r1-b"]], "ping": [["a-r1", "r1-b"]]})
    result, _log = _drill(tmp_path, state_dir, ROUTERS, "{id: crash, at: 4s, fault: node-loss, node: r1, for: 4s}", backend)
    apply = next(s for s in result.steps if s.label == "crash" and s.kind == "apply")
    # Off the network at once (its links read back down); confirmed only once every process is gone.
    assert (apply.issued_s, apply.in_force_s, apply.confirmed_s) == (4.0, 4.0, 4.0 + _SlowKillOps.KILL_S)
    revert = next(s for s in result.steps if s.label == "crash" and s.kind == "revert")
    # Restored once its links are up again, before its addresses, routes and services (its boot).
    assert revert.in_force_s == revert.issued_s == 8.0
    # The event's window is issued -> in force: the kill's wait is not in the accuracy.
    flow = _metric(result, "flow", "crash")
    assert flow.accuracy_s == pytest.approx(1 / RATE)


def test_a_container_restored_in_a_new_namespace_takes_its_probes_along(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=VIA_R1_THEN_R2, containers=["r1"])
    _drill(tmp_path, state_dir, ROUTERS, "{id: crash, at: 4s, fault: node-loss, node: r1, for: 4s}", backend)
    assert backend.probes is not None and backend.probes.followed == ["r1"]


def test_node_loss_without_backup_is_out_until_restored(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths={"flow": [["a-r1", "r1-b"]], "ping": [["a-r1", "r1-b"]]})
    result, _log = _drill(tmp_path, state_dir, ROUTERS, "{id: crash, at: 4s, fault: node-loss, node: r1, for: 4s}", backend)
    flow = _metric(result, "flow", "crash")
    assert (flow.lost, flow.outage_s, flow.time_to_recover_s, flow.recovered_during_event) == (4 * RATE, 4.0, 4.0, False)


# --------------------------------------------------------------------------- degrade (h/impair)


def test_ramp_plays_its_exact_schedule_through_impair(tmp_path: Path, state_dir: Path) -> None:
    backend = FakeBackend(paths=NO_BACKUP)
    step = "{id: slow, at: 5s, fault: degrade, link: fibre, direction: a-to-b, ramp: {from: 10ms, to: 20ms, over: 1s}, for: 3s}"
    result, _log = _drill(tmp_path, state_dir, FIBRE.replace("step: cut", "step: slow"), step, backend)
    played = [
        (t, c.direction, None if c.settings is None else in_force(c.settings).delay_s, c.in_place)  # type: ignore[union-attr]
        for t, _n, (changes,) in _ops(backend, "impair")
        for c in changes  # type: ignore[attr-defined]
    ]
    # From 10 ms at the apply, one step of 1 ms every 100 ms (in place), back to nothing at the revert.
    expected: list[tuple[float, str, float | None, bool]] = [(5.0, "a-to-b", 0.010, False)]
    expected += [(5.0 + k / 10, "a-to-b", round(0.010 + 0.001 * k, 6), True) for k in range(1, 11)]
    expected += [(8.0, "a-to-b", None, False)]
    assert [(pytest.approx(t, abs=1e-9), d, s, p) for t, d, s, p in played] == expected  # type: ignore[comparison-overlap]
    assert [(round(c.scheduled_s, 9), round(c.issued_s, 9)) for c in result.changes] == [
        (round(5.0 + k / 10, 9), round(5.0 + k / 10, 9)) for k in range(1, 11)
    ]
    # The probe's round trip follows the delay; nothing is lost.
    assert _metric(result, "voice", "slow").lost == 0


# --------------------------------------------------------------------------- preflight


def test_preflight_checks_the_backends_capabilities(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(FIBRE.replace("TIMELINE", "{id: cut, at: 5s, fault: degrade, link: fibre, delay: 50ms, for: 2s}"))
    scenario = load_scenario(path)
    preflight(scenario, FakeBackend().capabilities)
    # No netem, and no TUN/TAP for a userspace engine to take the link instead.
    without = FakeBackend(capabilities={**all_capabilities(), NETEM: False, TUNTAP: False})
    with pytest.raises(ScenarioError, match="netem"):
        preflight(scenario, without.capabilities)
    assert NFTABLES in all_capabilities()


def test_run_refuses_before_anything_is_created(tmp_path: Path, state_dir: Path) -> None:
    path = tmp_path / "fake.yaml"
    text = FIBRE.replace("TIMELINE", "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}")
    path.write_text(text.split("probes:")[0] + "timeline:" + text.split("timeline:")[1].split("expect:")[0] + "duration: 15s\n")
    with pytest.raises(ScenarioError, match="at least one probe"):
        lifecycle.run(path, state_dir)
    assert lifecycle.list_runs(state_dir) == []  # no run, so nothing was deployed


class _OtherHostOps(FakeOps):
    """FakeOps as agents on other hosts give them (drills.backend.TimedOps): a step's operations
    are issued `LEAD_S` ahead and the host holds them until the step's instant; each read-back
    costs the controller a round trip of `RTT_S`; the host's own stamps (`take_span`) place the
    change from 2 ms to 3 ms after the instant it was due, its first change confirmed at 2.2 ms."""

    LEAD_S = 0.050
    RTT_S = 0.010

    def __init__(self, world: World, clock: Clock, containers: frozenset[str]) -> None:
        super().__init__(world, clock, containers)
        self.due_s: float | None = None
        self.ran_due: float | None = None

    def lead_s(self) -> float:
        return self.LEAD_S

    def due_at(self, instant_s: float | None) -> None:
        self.due_s = instant_s

    def set_link(self, node: str, ifname: str, *, up: bool) -> None:
        self.ran_due = self.due_s
        super().set_link(node, ifname, up=up)

    def link_state(self, node: str, ifname: str) -> LinkState:
        # Answered once the host ran it: not before the instant it was held for.
        self.clock.sleep_until(max(self.clock.now_s(), self.due_s or 0.0) + self.RTT_S)
        return super().link_state(node, ifname)

    def take_span(self) -> OpsSpan | None:
        due, self.ran_due = self.ran_due, None
        return None if due is None else OpsSpan(due + 0.002, due + 0.003, due + 0.0022)


class _OtherHostBackend(FakeBackend):
    def ops(self, run: Run, clock: Clock) -> NodeOps:
        assert self.world is not None
        return _OtherHostOps(self.world, clock, self.containers)


def test_a_fault_on_other_hosts_is_sent_ahead_and_placed_by_their_stamps(tmp_path: Path, state_dir: Path) -> None:
    backend = _OtherHostBackend(paths=NO_BACKUP)
    result, log = _drill(tmp_path, state_dir, FIBRE, "{id: cut, at: 5s, fault: link-down, link: fibre, for: 5s}", backend)
    # Issued 50 ms ahead of the step's instant (the hosts hold them until it): the fake world
    # saw the ends set at 4.95 s and 9.95 s of the drill clock.
    assert [(round(at_s, 6), up) for at_s, _name, (_node, _ifname, up) in _ops(backend, "set_link")] == [
        (4.95, False), (4.95, False), (9.95, True), (9.95, True)
    ]
    # The controller saw each step answered after read-backs (10 ms past the instant, then 10 ms
    # more); the hosts' stamps place
    # the change 2 to 3 ms after its instant, and that is what each step records. A step with
    # no operation (the note at 3 s) is placed at its instant, not the lead's.
    steps = [(s.kind, s.label, round(s.issued_s - s.scheduled_s, 6), round(s.confirmed_s - s.scheduled_s, 6)) for s in result.steps]
    assert steps == [("apply", "step0", 0.0, 0.0), ("apply", "cut", 0.002, 0.003), ("revert", "cut", 0.002, 0.003)]
    assert any("apply cut" in line and "(confirmed +3.00 ms)" in line for line in log), log
    # A cut link is in force once either end is down: the first change confirmed on its host
    # (2.2 ms) bounds when the cut took effect. Restored, every end must be up: no such bound.
    assert [None if s.in_force_s is None else round(s.in_force_s - s.scheduled_s, 6) for s in result.steps] == [None, 0.0022, None]
    # ... and the outage's accuracy carries those 0.2 ms, not the 20 ms the controller waited.
    metric = _metric(result, "voice", "cut")
    assert metric.accuracy_s == pytest.approx(1 / RATE + 0.0002)
