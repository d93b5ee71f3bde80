"""A drill's figures from its records: baselines, per-event metrics, phases, availability and
verdicts, for every stream and application probe, against the fault instants the runner stamped."""

from __future__ import annotations

from drills.drill_result import SUSTAIN_S, WARMUP_S, DrillResult, StepRecord
from drills.engine.timeline import Action
from drills.known import judge as judge_known
from drills.measure import Window, analyse, availability, baseline, lost_flags, phase_stats
from drills.measure_samples import analyse_samples, baseline_samples, sample_phase_stats
from drills.objectives import evaluate
from drills.records import ProbeRecord, StreamRecord
from drills.scenario.probes import UdpStreamSpec
from drills.scenario.resolved import Scenario

# The least guard between the baseline and the first fault. A round trip's p99 does not bound a
# packet's time in flight on a busy machine: under load, a port fault caught the six packets
# sent in the 5 ms before it, still queued behind a busy CPU (softirq work deferred to an
# ordinary kernel thread, or a vCPU its host did not run), and a clean drill read inconclusive.
BASELINE_GUARD_MIN_S = 0.025


def analyse_drill(
    result: DrillResult,
    scenario: Scenario,
    records: list[StreamRecord],
    app_records: list[ProbeRecord],
    t0: float,
    actions: list[Action],
    duration_s: float | None = None,
) -> None:
    """Fill `result`'s figures from the probes' records; `t0` is the drill clock's zero and
    `result.steps` the stamped timeline; `duration_s` how long the drill ran (default: the
    scenario's duration; longer when the exercise was held, shorter when it was stopped)."""
    end_s = scenario.duration_s if duration_s is None else duration_s
    result.t0_s = t0
    result.duration_s = end_s
    result.records = records
    result.app_records = app_records
    fault_steps = [s for s in result.steps if s.fault != "note"]
    first_fault_s = fault_steps[0].issued_s if fault_steps else end_s
    step_ids = {a.label: a.step.id or "" for a in actions}
    streams = {p.name: p for p in scenario.probes if isinstance(p, UdpStreamSpec)}
    spans = fault_spans(fault_steps, end_s, t0)
    last_s = max((end for _, end in spans), default=t0 + first_fault_s)
    phase_spans = {
        "baseline": [(t0 + WARMUP_S, t0 + first_fault_s)],
        "fault": spans,
        "recovery": [(last_s, t0 + end_s)],
        "all": [(t0 + WARMUP_S, t0 + end_s)],
    }
    windows = [
        (
            Window(step.label, step.kind, t0 + step.issued_s, t0 + (fault_steps[i + 1].issued_s if i + 1 < len(fault_steps) else end_s)),
            step.effect_by_s - step.issued_s,  # it took effect somewhere in there
        )
        for i, step in enumerate(fault_steps)
    ]  # fmt: skip
    for record in records:
        late_after_s = streams[record.name].late_after_s
        result.late_after_s[record.name] = late_after_s
        flags = lost_flags(record, late_after_s)
        # A packet sent just before the first fault may be lost in flight because of it: the
        # baseline ends a guard interval earlier (twice the baseline's worst round trip, at
        # least two packet gaps and BASELINE_GUARD_MIN_S), so such a packet never makes a clean
        # baseline look dirty.
        rtt_p99_s = phase_stats(record, flags, "pre", phase_spans["baseline"]).rtt_p99_s or 0.0
        guard_s = max(2 * rtt_p99_s, 2.0 / record.rate_pps, BASELINE_GUARD_MIN_S)
        tolerated_pct = streams[record.name].tolerated_loss_pct
        if tolerated_pct > 0:
            result.tolerated_loss_pct[record.name] = tolerated_pct
        result.baselines[record.name] = baseline(
            record, flags, t0 + WARMUP_S, t0 + first_fault_s - guard_s, tolerated_pct
        )
        for window, uncertainty_s in windows:
            result.metrics.append(analyse(record, flags, window, SUSTAIN_S, uncertainty_s, tolerated_pct))
        result.phases[record.name] = [phase_stats(record, flags, name, sp) for name, sp in phase_spans.items()]
        observed = list(zip(record.sent, flags, strict=True))
        result.availability[record.name] = availability(observed, t0 + WARMUP_S, t0 + end_s)
    specs = {p.name: p for p in scenario.probes}
    for app in app_records:
        tolerated_pct = specs[app.name].tolerated_failures_pct if app.name in specs else 0.0
        if tolerated_pct > 0:
            result.tolerated_loss_pct[app.name] = tolerated_pct
        # A sample started within one timeout of the first fault may fail because of it.
        result.baselines[app.name] = baseline_samples(app, t0 + WARMUP_S, t0 + first_fault_s - app.timeout_s, tolerated_pct)
        for window, uncertainty_s in windows:
            result.metrics.append(analyse_samples(app, window, SUSTAIN_S, uncertainty_s, tolerated_pct))
        result.phases[app.name] = [sample_phase_stats(app, name, sp) for name, sp in phase_spans.items()]
        samples = [(sample.sent_s, not sample.ok) for sample in app.samples]
        result.availability[app.name] = availability(samples, t0 + WARMUP_S, t0 + end_s)
    result.verdicts = evaluate(
        scenario.objectives, result.metrics, step_ids, result.phases, result.availability
    )
    result.known = judge_known(scenario.known, result.metrics, step_ids, result.baselines)


def fault_spans(fault_steps: list[StepRecord], end_s: float, t0: float) -> list[tuple[float, float]]:
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
