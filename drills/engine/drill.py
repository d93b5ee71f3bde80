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
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from drills import realtime
from drills.backend import Backend, CapabilityLookup, NodeOps, TimedOps
from drills.clock import Clock
from drills.drill_result import SUSTAIN_S as SUSTAIN_S
from drills.drill_result import WARMUP_S, ChangeStep, DrillResult, StepRecord
from drills.engine import daemon_check, pair_probes, probe_start
from drills.engine.analysis import analyse_drill
from drills.engine.control import ExerciseControl
from drills.engine.fault import Armable
from drills.engine.faults import Fault, FaultContext, build
from drills.engine.player import Player
from drills.engine.progress import ClockStarted, ClockStopped, ProbeHealth, Progress, Scheduled, StepDone, ignore
from drills.engine.timeline import Action, expand, unsupported
from drills.errors import DrillError, Problem, ScenarioError
from drills.records import ProbeRecord, StreamRecord
from drills.runs import STATUS_RUNNING, Run
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
    from drills.scenario import daemons, reachability

    problems = unsupported(scenario)
    problems += reachability.problems(scenario)
    problems += degrade.requirements(scenario, capabilities)
    problems += filter_faults.requirements(scenario, capabilities)
    problems += daemons.requirements(scenario, capabilities)
    return problems


def preflight(scenario: Scenario, capabilities: CapabilityLookup) -> None:
    """Refuse, before deploying, what this version or this host cannot run: the one place a
    scenario meets the backend's declared capabilities."""
    problems = requirements(scenario, capabilities)
    if not scenario.probes:
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
    control: ExerciseControl | None = None,
) -> DrillResult:
    """Run one drill of `scenario` (resolved, and passed by `preflight` against `backend`'s
    capabilities) on `backend`, timed on `clock`. `run` is a new run, locked, its metadata
    written (`drills.lifecycle.run` makes it); it is torn down, and removed unless something
    was left, before this returns or raises. `seed` drives every random choice (the caller gave
    the backend the same). `probes` starts the probes (default: real sockets in the nodes).
    `control` is the exercise's control desk (drills.engine.control), None for a dry run that
    plays the MSEL as planned (drills.engine.player). `log` gets the plain progress lines; `progress` the typed events a live view draws from
    (drills.engine.progress); both are called on the engine's threads and must return at once."""
    start_probes = probes or _LocalProbes.start
    result = DrillResult(scenario.name, run.run_id, seed, capabilities=dict(backend.capabilities()))
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
            if control is not None:
                control.attach(run.dir)  # its socket opens in the run directory
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
            for fault in faults.values():  # journaled above: what arming puts in place is covered
                if isinstance(fault, Armable):
                    fault.arm(ctx)
            # A full garbage collection on the clock can stall a fault by 50-80 ms (bench/apply.py
            # measured it): collect now and freeze what exists, so only new objects are scanned.
            gc.collect()
            gc.freeze()
            running = start_probes(scenario, ctx.ops, faults, clock, seed)
            steal_before_s = realtime.steal_s()
            t0 = clock.now_s()
            log(f"run {run.run_id}: drill clock started; {running.count} probe(s), {scenario.duration_s:g} s")
            progress(_clock_started(scenario, run.run_id, t0, actions, faults, running, clock))
            # On other hosts a step's operations go out ahead of its instant and the agents run
            # them at it (drills.backend.TimedOps): the channel's latency does not delay it.
            lead_s = ctx.ops.lead_s() if isinstance(ctx.ops, TimedOps) else 0.0
            by_label = {a.label: a for a in actions}
            fault_ctx = ctx

            def perform(action: Action, due_s: float) -> StepRecord | None:
                if action.kind == "revert" and all(label != action.label for label, _ in undo):
                    log(f"{action.label} is not in force (its inject was skipped or not delivered): nothing to revert")
                    return None
                step = _perform(action, due_s, faults, fault_ctx, undo, run, clock, t0)
                result.steps.append(step)
                progress(StepDone(step.scheduled_s, step.kind, step.label, step.fault, step.detail, step.issued_s, step.confirmed_s))
                return step

            def revert_all(now_s: float) -> None:  # the stop word: newest first, each stamped
                for label, _ in reversed(list(undo)):
                    perform(replace(by_label[label], kind="revert"), now_s)

            player = Player(
                scenario,
                actions,
                clock,
                t0,
                perform,
                revert_all,
                control=control,
                describe=lambda a: faults[a.label].describe(reverted=False),
                probes=lambda: [asdict(h) for h in running.health(clock.now_s())] if running is not None else [],
                lead_s=lead_s,
                log=log,
            )
            # Until the probes stop: never preempted holding the GIL that their senders need.
            with realtime.controlling():
                played_s = player.play()
                steal_after_s = realtime.steal_s()
                result.exercise = player.record()
                progress(ClockStopped(clock.now_s() - t0))
                daemon_check.check(scenario, ctx.ops, (line for _, f in undo for line in f.touches()))
                result.changes = _changes(faults, t0)
                records, pair_records = running.stop()
                running = None
            result.host_steal_s = realtime.steal_between(steal_before_s, steal_after_s)
            if result.host_steal_s:
                log(
                    f"the host took {result.host_steal_s * 1e3:.0f} ms of CPU from this machine while the clock ran "
                    "(steal time): a sender it held back samples less often, which the figures' accuracy states"
                )
            app_records = [r for r in records if isinstance(r, ProbeRecord)]
            stream_records = [r for r in records if isinstance(r, StreamRecord)]
            analyse_drill(result, scenario, stream_records, app_records, t0, actions, played_s)
            result.pair_records = pair_records
            result.pairs = pair_probes.analyse(result.steps, faults, pair_records, t0, result.duration_s, WARMUP_S, SUSTAIN_S)
    finally:
        if running is not None:
            running.abort()
        with abort_on_signals():
            if control is not None:
                control.finish(None)
                control.detach()
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


@dataclass
class _LocalProbes:
    """The real probes (drills.engine.probe_start): sockets opened in the nodes through the
    backend's SocketOps, the pair mesh across the partitions last."""

    probes: list[probe_start.RunningProbe]
    clock: Clock
    count: int

    @classmethod
    def start(cls, scenario: Scenario, ops: NodeOps, _faults: Mapping[str, Fault], clock: Clock, seed: int) -> _LocalProbes:
        return cls(probe_start.start_probes(scenario, ops, clock, seed), clock, len(scenario.probes))

    def health(self, now_s: float) -> list[ProbeHealth]:
        return probe_start.snapshot(self.probes, self.clock, LIVE_PAIRS_MAX)()

    def follow(self, node: str, log: Log) -> None:
        probe_start.follow(node, self.probes, log)

    def stop(self) -> tuple[list[StreamRecord | ProbeRecord], list[StreamRecord]]:
        collected = probe_start.stop_probes(self.probes)
        self.probes = []
        return [*collected.streams, *collected.apps], collected.pairs

    def abort(self) -> None:
        probe_start.stop_probes(self.probes, drain=False)
        self.probes = []


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


def _perform(
    action: Action,
    due_s: float,
    faults: dict[str, Fault],
    ctx: FaultContext,
    undo: list[tuple[str, Fault]],
    run: Any,
    clock: Clock,
    t0: float,
) -> StepRecord:
    """Apply or revert one action, due at drill time `due_s`, and stamp when it was issued and confirmed. The intent of every
    fault was journaled (and synced) before the clock started; the marker written here is not
    synced, so no fsync delays a fault."""
    fault = faults[action.label]
    timed = ctx.ops if isinstance(ctx.ops, TimedOps) else None
    ctx.due_s = t0 + due_s
    if timed is not None:
        timed.take_span()  # what ran before this action is not this action's
        timed.due_at(ctx.due_s)
    ctx.in_force_s = None
    issued = clock.now_s() - t0
    try:
        with realtime.applying():  # its window not stretched by ordinary tasks taking the CPU
            if action.kind == "apply":
                if fault.reversible:
                    undo.append((action.label, fault))
                fault.apply(ctx)
            else:
                fault.revert(ctx)
                undo[:] = [(label, f) for label, f in undo if label != action.label]
    finally:
        ctx.due_s = None
        if timed is not None:
            timed.due_at(None)
    confirmed = clock.now_s() - t0
    in_force: float | None = None
    if timed is not None:
        span = timed.take_span()
        if span is not None:
            # Their clocks place the change within [span], tighter than this side's send and
            # answer (which add the channel's round trips, and the lead). Never outside them:
            # nothing ran before it was sent, and it was done when the answer came.
            issued, confirmed = max(issued, span.start_s - t0), min(confirmed, span.end_s - t0)
            if action.kind == "apply" and fault.in_force_at_first_change:
                # One end of a cut link, down on its host, stops the link: the hosts cut their
                # ends at the same instant, and the first to confirm bounds when it took effect.
                in_force = max(issued, min(confirmed, span.first_change_s - t0))
        else:  # no operation ran (a note): the step is placed at its instant
            issued = max(issued, due_s)
        confirmed = max(confirmed, issued)
    if ctx.in_force_s is not None:
        # The fault marked when it (or its revert: node-freeze's processes seen running again)
        # was in force (FaultContext.mark_in_force, on this clock): the event's window ends
        # there, not after what only confirms it (a node's kill, a read-back, a last scan).
        marked = min(confirmed, max(issued, ctx.in_force_s - t0))
        in_force = marked if in_force is None else min(in_force, marked)
    run.journal.record([{"op": f"fault-{action.kind}", "step": action.label, "at_s": confirmed}], sync=False)
    detail = fault.describe(reverted=action.kind == "revert")
    lag_ms = (confirmed - due_s) * 1e3
    ctx.log(f"T+{due_s:06.2f} {action.kind} {action.label}: {detail} (confirmed +{lag_ms:.2f} ms)")
    return StepRecord(action.label, action.kind, action.step.kind, due_s, issued, confirmed, detail, in_force)
