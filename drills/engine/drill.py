"""`drill run`: deploy, stream probe traffic, play the timeline, revert, measure, tear down.

Faults come from the registry (drills.engine.faults), probes are udp-stream streams or
application probes (icmp, tcp-connect, http, dns, command); `preflight` refuses, with its
location and before deploying, whatever this version or this host cannot run. Every applied fault is journaled before it is applied and pushed on an undo stack; the stack
unwinds on success, on error and on SIGINT/SIGTERM, and the testbed is torn down after it.
"""

from __future__ import annotations

import gc
import random
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from drills import backends
from drills.backend import NodeOps
from drills.clock import Clock, SystemClock
from drills.engine import pair_probes, probe_start
from drills.engine.faults import Fault, FaultContext, build
from drills.engine.probe_start import RunningProbe
from drills.engine.progress import ClockStarted, ClockStopped, Progress, Scheduled, Snapshot, StepDone, ignore
from drills.engine.timeline import Action, expand, unsupported
from drills.errors import DrillError, Problem, ScenarioError
from drills.lifecycle import abort_on_signals
from drills.measure import (
    Availability,
    Baseline,
    EventMetrics,
    PairResult,
    PhaseStats,
    Window,
    analyse,
    availability,
    baseline,
    lost_flags,
    phase_stats,
)
from drills.measure_samples import analyse_samples, baseline_samples, sample_phase_stats
from drills.netns import kernel
from drills.objectives import Verdict, evaluate
from drills.records import ProbeRecord, StreamRecord
from drills.runs import STATUS_RUNNING, RunStore
from drills.scenario import load_scenario
from drills.scenario.probes import UdpStreamSpec
from drills.scenario.resolved import Scenario

Log = Callable[[str], None]

SUSTAIN_S = 1.0  # sustained validation time (RFC 6413 §4): recorded in every result
WARMUP_S = 1.0  # probe traffic before this is not part of the baseline
LIVE_PAIRS_MAX = 12  # a partition's pair probes are shown in the live view up to this many


@dataclass(frozen=True)
class StepRecord:
    """When a timeline action was due and when the kernel confirmed it (drill seconds)."""

    label: str
    kind: str
    fault: str
    scheduled_s: float
    issued_s: float  # the first change was sent to the kernel: the event instant
    confirmed_s: float  # the kernel showed the change on every object it touches
    detail: str

    @property
    def skew_s(self) -> float:
        return self.confirmed_s - self.scheduled_s


@dataclass(frozen=True)
class ChangeStep:
    """One change a time-varying fault (a ramp, a handover) played while applied, in drill
    seconds like `StepRecord`; `error` is set when the change failed and the driver stopped."""

    label: str
    direction: str
    scheduled_s: float
    issued_s: float
    confirmed_s: float
    detail: str
    error: str | None = None


@dataclass
class DrillResult:
    scenario: str
    run_id: str
    seed: int
    steps: list[StepRecord] = field(default_factory=list)
    changes: list[ChangeStep] = field(default_factory=list)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    metrics: list[EventMetrics] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    sustain_s: float = SUSTAIN_S
    revert_failures: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    t0_s: float = 0.0  # the drill clock's zero on the monotonic clock (samples are relative to it)
    records: list[StreamRecord] = field(default_factory=list)  # raw samples of every stream
    app_records: list[ProbeRecord] = field(default_factory=list)  # every sample of application probes
    phases: dict[str, list[PhaseStats]] = field(default_factory=dict)  # probe -> baseline/fault/recovery
    availability: dict[str, Availability] = field(default_factory=dict)  # probe -> windows after warm-up
    late_after_s: dict[str, float] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)  # link -> engine that served it (kernel, userspace)
    # Every ordered node pair across each partition, intended against observed (one way).
    pairs: list[PairResult] = field(default_factory=list)
    pair_records: list[StreamRecord] = field(default_factory=list)  # the pair mesh's raw samples

    @property
    def inconclusive(self) -> bool:
        return not self.baselines or any(not b.clean for b in self.baselines.values())

    @property
    def passed(self) -> bool:
        # A pair cut when it should not be, or the reverse, fails the drill like a missed
        # objective; a pair that could not be judged (unreachable before the partition) too.
        return all(v.passed for v in self.verdicts) and all(p.matches for p in self.pairs)


def requirements(scenario: Scenario, capabilities: Callable[[], Mapping[str, bool]] | None = None) -> list[Problem]:
    """Everything in `scenario` this version or this host cannot run, located in the file:
    faults not implemented yet, degrade parameters the kernel lacks (netem), a missing `nft`,
    objectives not evaluated yet. `drill validate` and `drill run` both report these."""
    from drills import doctor
    from drills.engine import degrade, filter_faults
    from drills.scenario import reachability

    problems = unsupported(scenario)
    problems += reachability.problems(scenario)
    problems += degrade.requirements(scenario, capabilities or doctor.kernel_capabilities)

    def declared() -> Mapping[str, bool]:  # what the backend that would deploy it can do
        return cast(Mapping[str, bool], backends.for_topology(scenario.topology, lambda _m: None).capabilities())

    # Asked only when a step needs it.
    problems += filter_faults.requirements(scenario, capabilities or declared)
    return problems


def preflight(scenario: Scenario) -> None:
    """Refuse, before deploying, what this version or this host cannot run."""
    problems = requirements(scenario)
    if not scenario.probes:
        problems.append(scenario.problem(("probes",), "a drill needs at least one probe to measure recovery"))
    if problems:
        raise ScenarioError(problems)


def run_drill(
    scenario_path: Path, state_dir: Path, log: Log, clock: Clock | None = None, progress: Progress = ignore
) -> DrillResult:
    """Run one drill. `log` gets the plain progress lines; `progress` the typed events a live
    view draws from (drills.engine.progress); both are called on the engine's threads and
    must return at once."""
    scenario = load_scenario(scenario_path)
    preflight(scenario)
    kernel.require_root()
    clock = clock or SystemClock()
    seed = scenario.seed if scenario.seed is not None else secrets.randbits(32)
    backend = backends.for_topology(scenario.topology, log, service_cwd=scenario_path.resolve().parent, seed=seed)
    run = RunStore(state_dir).create(scenario.name, scenario_path.resolve())
    meta = run.meta()
    meta.nodes = {node.name: backend.namespace_of(run, node.name) for node in scenario.topology.nodes}
    meta.backend = backends.kind(scenario.topology)
    run.write_meta(meta)
    result = DrillResult(scenario.name, run.run_id, seed)
    # Probe threads and the timeline share the GIL; Python's default 5 ms switch interval would
    # delay a due packet or fault by up to that much. 0.2 ms keeps timestamps tight.
    previous_switch_s = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    undo: list[tuple[str, Fault]] = []
    ops: NodeOps | None = None
    ctx = FaultContext(cast(NodeOps, _NoOps()), clock, log, random.Random(seed))
    probes: list[RunningProbe] = []

    def follow(node: str) -> None:  # a fault replaced the namespace of `node`: probes follow it
        probe_start.follow(node, probes, log)

    ctx.namespace_listeners.append(follow)
    try:
        with abort_on_signals():
            backend.deploy(scenario.topology, run)
            result.engines = dict(backend.engines)
            run.set_status(STATUS_RUNNING)
            ops = ctx.ops = backend.ops(run, clock)
            ops.warm()  # no handle is opened, no index looked up, on the clock
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
            probes = probe_start.start_probes(scenario, ops, clock, seed)
            t0 = clock.now_s()
            log(f"run {run.run_id}: drill clock started; {len(scenario.probes)} probe(s), {scenario.duration_s:g} s")
            snapshot = probe_start.snapshot(probes, clock, LIVE_PAIRS_MAX)
            progress(_clock_started(scenario, run.run_id, t0, actions, faults, snapshot))
            for action in actions:
                if not clock.sleep_until(t0 + action.at_s, precise=True):
                    break
                step = _perform(action, faults, ctx, undo, run, clock, t0)
                result.steps.append(step)
                progress(StepDone(step.scheduled_s, step.kind, step.label, step.fault, step.detail, step.issued_s, step.confirmed_s))
            clock.sleep_until(t0 + scenario.duration_s)
            progress(ClockStopped(clock.now_s() - t0))
            result.changes = _changes(faults, t0)
            collected = probe_start.stop_probes(probes)
            probes = []
            _analyse(result, scenario, collected.streams, collected.apps, t0, actions)
            result.pair_records = collected.pairs
            result.pairs = pair_probes.analyse(result.steps, faults, collected.pairs, t0, result.duration_s, WARMUP_S, SUSTAIN_S)
    finally:
        probe_start.stop_probes(probes, drain=False)
        with abort_on_signals():
            # Unwind every fault still applied, newest first. One that fails to revert is
            # reported loudly and the rest still run: the teardown below removes the run's
            # namespaces, and with them whatever a failed revert left inside.
            while undo:
                label, fault = undo.pop()
                try:
                    fault.revert(ctx)
                    log(f"reverted {label} at teardown")
                except DrillError as exc:
                    result.revert_failures.append(f"{label}: {exc}")
                    log(f"REVERT FAILED for {label}: {exc}; the testbed teardown removes what it left")
            if ops is not None:
                ops.close()
            sys.setswitchinterval(previous_switch_s)
            gc.unfreeze()
            run.set_status("tearing-down")
            report = backend.teardown(run)
            if report.clean:
                run.remove()
            else:
                run.unlock()
    return result


class _NoOps:
    """Stands in for the node operations until the testbed is deployed: no fault is applied
    before then, so nothing may reach for them."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"node operation {name} used before the testbed was deployed")


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


def _clock_started(
    scenario: Scenario,
    run_id: str,
    t0: float,
    actions: list[Action],
    faults: Mapping[str, Fault],
    snapshot: Snapshot,
) -> ClockStarted:
    """The event a live view starts from: the schedule, and a snapshot of every probe's health
    it can call from its own thread (reads counters only; see drills.measure_samples)."""
    schedule = tuple(
        Scheduled(a.at_s, a.kind, a.label, a.step.kind, faults[a.label].describe(reverted=a.kind == "revert"))
        for a in actions
    )
    return ClockStarted(scenario.name, run_id, t0, scenario.duration_s, schedule, snapshot)


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


def _analyse(
    result: DrillResult,
    scenario: Scenario,
    records: list[StreamRecord],
    app_records: list[ProbeRecord],
    t0: float,
    actions: list[Action],
) -> None:
    result.t0_s = t0
    result.duration_s = scenario.duration_s
    result.records = records
    result.app_records = app_records
    fault_steps = [s for s in result.steps if s.fault != "note"]
    first_fault_s = fault_steps[0].issued_s if fault_steps else scenario.duration_s
    step_ids = {a.label: a.step.id or "" for a in actions}
    streams = {p.name: p for p in scenario.probes if isinstance(p, UdpStreamSpec)}
    spans = _fault_spans(fault_steps, scenario.duration_s, t0)
    last_s = max((end for _, end in spans), default=t0 + first_fault_s)
    phase_spans = {
        "baseline": [(t0 + WARMUP_S, t0 + first_fault_s)],
        "fault": spans,
        "recovery": [(last_s, t0 + scenario.duration_s)],
        "all": [(t0 + WARMUP_S, t0 + scenario.duration_s)],
    }
    windows = [
        (
            Window(step.label, step.kind, t0 + step.issued_s, t0 + (fault_steps[i + 1].issued_s if i + 1 < len(fault_steps) else scenario.duration_s)),
            step.confirmed_s - step.issued_s,
        )
        for i, step in enumerate(fault_steps)
    ]  # fmt: skip
    for record in records:
        late_after_s = streams[record.name].late_after_s
        result.late_after_s[record.name] = late_after_s
        flags = lost_flags(record, late_after_s)
        # A packet sent just before the first fault may be lost in flight because of it: the
        # baseline ends a guard interval earlier (twice the baseline's worst round trip, at
        # least two packet gaps), so such a packet never makes a clean baseline look dirty.
        rtt_p99_s = phase_stats(record, flags, "pre", phase_spans["baseline"]).rtt_p99_s or 0.0
        guard_s = max(2 * rtt_p99_s, 2.0 / record.rate_pps)
        tolerated_pct = streams[record.name].tolerated_loss_pct
        result.baselines[record.name] = baseline(
            record, flags, t0 + WARMUP_S, t0 + first_fault_s - guard_s, tolerated_pct
        )
        for window, uncertainty_s in windows:
            result.metrics.append(analyse(record, flags, window, SUSTAIN_S, uncertainty_s, tolerated_pct))
        result.phases[record.name] = [phase_stats(record, flags, name, sp) for name, sp in phase_spans.items()]
        observed = list(zip(record.sent, flags, strict=True))
        result.availability[record.name] = availability(observed, t0 + WARMUP_S, t0 + scenario.duration_s)
    for app in app_records:
        # A sample started within one timeout of the first fault may fail because of it.
        result.baselines[app.name] = baseline_samples(app, t0 + WARMUP_S, t0 + first_fault_s - app.timeout_s)
        for window, uncertainty_s in windows:
            result.metrics.append(analyse_samples(app, window, SUSTAIN_S, uncertainty_s))
        result.phases[app.name] = [sample_phase_stats(app, name, sp) for name, sp in phase_spans.items()]
        samples = [(sample.sent_s, not sample.ok) for sample in app.samples]
        result.availability[app.name] = availability(samples, t0 + WARMUP_S, t0 + scenario.duration_s)
    result.verdicts = evaluate(
        scenario.objectives, result.metrics, step_ids, result.phases, result.availability
    )


def _fault_spans(fault_steps: list[StepRecord], end_s: float, t0: float) -> list[tuple[float, float]]:
    """The intervals during which some fault was applied (one-shot steps excluded)."""
    applied: dict[str, float] = {}
    spans: list[tuple[float, float]] = []
    for step in fault_steps:
        if step.fault in ("exec",):
            continue
        if step.kind == "apply":
            applied[step.label] = step.issued_s
        elif step.label in applied:
            spans.append((t0 + applied.pop(step.label), t0 + step.confirmed_s))
    spans.extend((t0 + start, t0 + end_s) for start in applied.values())  # never lifted
    return spans
