"""`drill run`'s engine: deploy, stream probe traffic, play the timeline, revert, measure, tear down.

`run_drill` gets a resolved scenario, a backend and a clock from its caller (the CLI, through
`drills.lifecycle.run`), which also checked the scenario against the backend's capabilities
(`preflight`) before anything was deployed. Faults come from the registry
(drills.engine.faults) and act through the backend's node operations; probes come from an
injectable starter (the real one opens sockets in the nodes; the unit tests' fake backend
synthesizes records). Every applied fault is journaled before it is applied and pushed on an
undo stack; the stack unwinds on success, on error and on SIGINT/SIGTERM, and the testbed is
torn down after it.
"""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from drills.backend import Backend, CapabilityLookup, NodeOps
from drills.clock import Clock
from drills.engine import pair_probes
from drills.engine.analysis import analyse_drill
from drills.engine.faults import Fault, FaultContext, build
from drills.engine.progress import ClockStarted, ClockStopped, ProbeHealth, Progress, Scheduled, StepDone, ignore
from drills.engine.result import SUSTAIN_S as SUSTAIN_S
from drills.engine.result import WARMUP_S, ChangeStep, DrillResult, StepRecord
from drills.engine.timeline import Action, expand, unsupported
from drills.errors import DrillError, Problem, ScenarioError
from drills.probes.app import AppProbe, ProbeRecord, make_probe
from drills.probes.pair_mesh import PairMesh
from drills.probes.udp_stream import StreamRecord, UdpStream
from drills.runs import STATUS_RUNNING, Run
from drills.scenario import model
from drills.scenario.resolved import Scenario
from drills.signals import abort_on_signals

__all__ = ["ChangeStep", "DrillResult", "StepRecord", "preflight", "requirements", "run_drill"]

Log = Callable[[str], None]

LIVE_PAIRS_MAX = 12  # a partition's pair probes are shown in the live view up to this many


def requirements(scenario: Scenario, capabilities: CapabilityLookup) -> list[Problem]:
    """Everything in `scenario` this version or this host cannot run, located in the file:
    faults not implemented yet, degrade parameters the host lacks (netem), a missing `nft`,
    objectives not evaluated yet. `capabilities` is what the backend declares
    (`Backend.capabilities`), asked only when a choice depends on it. `drill validate` and
    `drill run` both report these."""
    from drills.engine import degrade, filter_faults
    from drills.scenario import reachability

    problems = unsupported(scenario)
    problems += reachability.problems(scenario)
    problems += degrade.requirements(scenario, capabilities)
    for i, step in enumerate(scenario.source.timeline):
        for message in filter_faults.requirements(getattr(step, "fault", "")):
            problems.append(scenario.problem(("timeline", i, "fault"), message))
    return problems


def preflight(scenario: Scenario, capabilities: CapabilityLookup) -> None:
    """Refuse, before deploying, what this version or this host cannot run: the one place a
    scenario meets the backend's declared capabilities."""
    problems = requirements(scenario, capabilities)
    if not scenario.source.probes:
        problems.append(scenario.problem(("probes",), "a drill needs at least one probe to measure recovery"))
    if problems:
        raise ScenarioError(problems)


# --------------------------------------------------------------------------- probes


class RunningProbes(Protocol):
    """The probes of one drill, started before its clock: the scenario's own, and the pair
    mesh across its partitions."""

    @property
    def count(self) -> int:
        """How many of the scenario's probes run (the pair mesh not counted)."""

    def health(self, now_s: float) -> list[ProbeHealth]:
        """Every probe's state now, for a live view (called from its thread: reads only)."""

    def follow(self, node: str, log: Log) -> None:
        """A fault replaced `node`'s network namespace: reopen its probes' sockets there."""

    def stop(self) -> tuple[list[StreamRecord | ProbeRecord], list[StreamRecord]]:
        """Stop every probe (in-flight packets drained); the scenario's probes' records, then
        the pair mesh's."""

    def abort(self) -> None:
        """Stop whatever still runs at once, nothing drained (the error path; idempotent)."""


# The probes of a drill, started: (scenario, the run's node operations, its faults, clock, seed).
ProbeStarter = Callable[[Scenario, NodeOps, Mapping[str, Fault], Clock, int], RunningProbes]


# --------------------------------------------------------------------------- the run


def run_drill(
    scenario: Scenario,
    backend: Backend,
    clock: Clock,
    run: Run,
    log: Log,
    *,
    seed: int,
    progress: Progress = ignore,
    probes: ProbeStarter | None = None,
) -> DrillResult:
    """Run one drill of `scenario` (resolved, and passed by `preflight` against `backend`'s
    capabilities) on `backend`, timed on `clock`. `run` is a new run, locked, its metadata
    written (`drills.lifecycle.run` makes it); it is torn down, and removed unless something
    was left, before this returns or raises. `seed` drives every random choice (the caller gave
    the backend the same). `probes` starts the probes (default: real sockets in the nodes).
    `log` gets the plain progress lines; `progress` the typed events a live view draws from
    (drills.engine.progress); both are called on the engine's threads and must return at once."""
    start_probes = probes or _LocalProbes.starter({n.name: backend.namespace_of(run, n.name) for n in scenario.topology.nodes})
    result = DrillResult(scenario.name, run.run_id, seed)
    # Probe threads and the timeline share the GIL; Python's default 5 ms switch interval would
    # delay a due packet or fault by up to that much. 0.2 ms keeps timestamps tight.
    previous_switch_s = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    undo: list[tuple[str, Fault]] = []
    ctx: FaultContext | None = None  # made once the testbed is deployed: no fault runs before
    running: RunningProbes | None = None

    def follow(node: str) -> None:  # a fault replaced the namespace of `node`: probes follow it
        if running is not None:
            running.follow(node, log)

    try:
        with abort_on_signals():
            backend.deploy(scenario.topology, run)
            result.engines = dict(backend.engines)
            run.set_status(STATUS_RUNNING)
            ctx = FaultContext(backend.ops(run, clock), clock, log, random.Random(seed))
            ctx.namespace_listeners.append(follow)
            ctx.ops.warm()  # no handle is opened, no index looked up, on the clock
            actions = expand(scenario, seed)
            faults = {a.label: build(a.step) for a in actions}
            run.journal.record(
                {"op": "fault", "step": label, "fault": type(f).__name__, "touches": f.touches()}
                for label, f in faults.items()
                if f.reversible
            )
            # A full garbage collection on the clock can stall a fault by 50-80 ms (bench/apply.py
            # measured it): collect now and freeze what exists, so only new objects are scanned.
            gc.collect()
            gc.freeze()
            running = start_probes(scenario, ctx.ops, faults, clock, seed)
            t0 = clock.now_s()
            log(f"run {run.run_id}: drill clock started; {running.count} probe(s), {scenario.duration_s:g} s")
            progress(_clock_started(scenario, run.run_id, t0, actions, faults, running, clock))
            for action in actions:
                if not clock.sleep_until(t0 + action.at_s, precise=True):
                    break
                step = _perform(action, faults, ctx, undo, run, clock, t0)
                result.steps.append(step)
                progress(StepDone(step.scheduled_s, step.kind, step.label, step.fault, step.detail, step.issued_s, step.confirmed_s))
            clock.sleep_until(t0 + scenario.duration_s)
            progress(ClockStopped(clock.now_s() - t0))
            result.changes = _changes(faults, t0)
            records, pair_records = running.stop()
            running = None
            app_records = [r for r in records if isinstance(r, ProbeRecord)]
            stream_records = [r for r in records if isinstance(r, StreamRecord)]
            analyse_drill(result, scenario, stream_records, app_records, t0, actions)
            result.pair_records = pair_records
            result.pairs = pair_probes.analyse(result.steps, faults, pair_records, t0, result.duration_s, WARMUP_S, SUSTAIN_S)
    finally:
        if running is not None:
            running.abort()
        with abort_on_signals():
            if ctx is not None:
                _unwind(undo, ctx, result, log)
                ctx.ops.close()
            sys.setswitchinterval(previous_switch_s)
            gc.unfreeze()
            run.set_status("tearing-down")
            report = backend.teardown(run)
            if report.clean:
                run.remove()
            else:
                run.unlock()
    return result


def _unwind(undo: list[tuple[str, Fault]], ctx: FaultContext, result: DrillResult, log: Log) -> None:
    """Revert every fault still applied, newest first. One that fails to revert is reported
    loudly and the rest still run: the teardown after this removes the run's nodes, and with
    them whatever a failed revert left inside."""
    while undo:
        label, fault = undo.pop()
        try:
            fault.revert(ctx)
            log(f"reverted {label} at teardown")
        except DrillError as exc:
            result.revert_failures.append(f"{label}: {exc}")
            log(f"REVERT FAILED for {label}: {exc}; the testbed teardown removes what it left")


def _changes(faults: Mapping[str, Fault], t0: float) -> list[ChangeStep]:
    """Every change the time-varying faults played so far, in drill seconds."""
    found = []
    for label, fault in faults.items():
        played = getattr(fault, "changes", None)
        for c in played() if played is not None else []:
            found.append(
                ChangeStep(label, c.direction, c.scheduled_s - t0, c.issued_s - t0, c.confirmed_s - t0, c.detail, c.error)
            )
    return sorted(found, key=lambda c: c.scheduled_s)


def _start_probes(
    scenario: Scenario, namespaces: dict[str, str], clock: Clock, seed: int
) -> list[UdpStream | AppProbe]:
    """Start every probe in its source node; an application probe samples at its interval."""
    started: list[UdpStream | AppProbe] = []
    topology = scenario.topology
    try:
        for index, probe in enumerate(scenario.source.probes):
            source = topology.node(probe.source)
            source_ip = source.primary_address
            started_probe: UdpStream | AppProbe
            if isinstance(probe, model.UdpStreamProbe):
                target_ip, target_node = _target(scenario, probe.to)
                assert source_ip is not None and target_node is not None
                started_probe = UdpStream(
                    probe.name, namespaces[source.name], source_ip, namespaces[target_node], target_ip,
                    probe.rate_pps, probe.size_bytes, clock, tag=(seed + index) & 0xFFFFFFFF, dscp=probe.dscp,
                )  # fmt: skip
            else:
                target_ip = _target(scenario, probe.to)[0] if not isinstance(probe, model.CommandProbe) else None
                started_probe = make_probe(probe, namespaces[source.name], source_ip, target_ip, clock=clock)
            started_probe.start()
            started.append(started_probe)
    except BaseException:
        for running in started:
            running.stop()
        raise
    return started


def _follow_namespace(node: str, namespace: str, probes: list[UdpStream | AppProbe | PairMesh], log: Log) -> None:
    """Reopen every probe socket of `node` in its new namespace. A probe that cannot is data, not
    an error: it keeps its old socket and measures an outage from here, said in the log."""
    for probe in probes:
        name = "partition pair mesh" if isinstance(probe, PairMesh) else f"probe {probe.record.name}"
        try:
            moved = probe.reopen(namespace)
        except (OSError, DrillError) as exc:
            log(f"  {node}: {name} could not follow it into its new namespace: {exc}")
            continue
        if moved:
            log(f"  {node}: {name} reopened in its new namespace ({', '.join(moved)})")


@dataclass
class _LocalProbes:
    """The real probes: sockets in the nodes' network namespaces on this host."""

    namespaces: dict[str, str]  # node -> its namespace
    probes: list[UdpStream | AppProbe]
    mesh: PairMesh | None

    @classmethod
    def starter(cls, namespaces: dict[str, str]) -> ProbeStarter:
        def start(scenario: Scenario, _ops: NodeOps, faults: Mapping[str, Fault], clock: Clock, seed: int) -> _LocalProbes:
            started = cls(namespaces, _start_probes(scenario, namespaces, clock, seed), None)
            try:
                started.mesh = pair_probes.start_mesh(scenario.topology, faults, namespaces, clock, seed)
            except BaseException:
                started.abort()
                raise
            return started

        return start

    @property
    def count(self) -> int:
        return len(self.probes)

    def health(self, now_s: float) -> list[ProbeHealth]:
        from drills.probes.health import app_health, stream_health

        mesh = self.mesh
        pairs = mesh.records if mesh is not None and len(mesh.records) <= LIVE_PAIRS_MAX else []
        return [
            stream_health(p.record, now_s) if isinstance(p, UdpStream) else app_health(p.record, now_s) for p in self.probes
        ] + [stream_health(record, now_s, kind="pair") for record in pairs]

    def follow(self, node: str, log: Log) -> None:
        _follow_namespace(node, self.namespaces[node], [*self.probes, *([self.mesh] if self.mesh else [])], log)

    def stop(self) -> tuple[list[StreamRecord | ProbeRecord], list[StreamRecord]]:
        records: list[StreamRecord | ProbeRecord] = [probe.stop() for probe in self.probes]
        self.probes = []
        pair_records = self.mesh.stop() if self.mesh is not None else []
        self.mesh = None
        return records, pair_records

    def abort(self) -> None:
        for probe in self.probes:
            probe.stop(drain_s=0.0) if isinstance(probe, UdpStream) else probe.stop()
        self.probes = []
        if self.mesh is not None:
            self.mesh.stop(drain_s=0.0)
            self.mesh = None


def _clock_started(
    scenario: Scenario,
    run_id: str,
    t0: float,
    actions: list[Action],
    faults: Mapping[str, Fault],
    probes: RunningProbes,
    clock: Clock,
) -> ClockStarted:
    """The event a live view starts from: the schedule, and a snapshot of every probe's health
    it can call from its own thread (reads counters only; see drills.probes.health)."""

    def snapshot() -> list[ProbeHealth]:
        return probes.health(clock.now_s())

    schedule = tuple(
        Scheduled(a.at_s, a.kind, a.label, a.step.kind, faults[a.label].describe(reverted=a.kind == "revert"))
        for a in actions
    )
    return ClockStarted(scenario.name, run_id, t0, scenario.duration_s, schedule, snapshot)


def _target(scenario: Scenario, ref: str) -> tuple[Any, str | None]:
    address, owner = scenario.topology.probe_target(ref)
    assert address is not None or ":" not in ref  # the loader refuses an endpoint with no IPv4
    return address, owner


def _perform(
    action: Action,
    faults: dict[str, Fault],
    ctx: FaultContext,
    undo: list[tuple[str, Fault]],
    run: Any,
    clock: Clock,
    t0: float,
) -> StepRecord:
    """Apply or revert one action and stamp when it was issued and confirmed. The intent of every
    fault was journaled (and synced) before the clock started; the marker written here is not
    synced, so no fsync delays a fault."""
    fault = faults[action.label]
    issued = clock.now_s() - t0
    if action.kind == "apply":
        if fault.reversible:
            undo.append((action.label, fault))
        fault.apply(ctx)
    else:
        fault.revert(ctx)
        undo[:] = [(label, f) for label, f in undo if label != action.label]
    confirmed = clock.now_s() - t0
    run.journal.record([{"op": f"fault-{action.kind}", "step": action.label, "at_s": confirmed}], sync=False)
    detail = fault.describe(reverted=action.kind == "revert")
    lag_ms = (confirmed - action.at_s) * 1e3
    ctx.log(f"T+{action.at_s:06.2f} {action.kind} {action.label}: {detail} (confirmed +{lag_ms:.2f} ms)")
    return StepRecord(action.label, action.kind, action.step.kind, action.at_s, issued, confirmed, detail)
