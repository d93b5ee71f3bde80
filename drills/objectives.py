"""Objectives (`expect:`) checked against measured recovery figures: verdicts, not exceptions.

A bound is met only when it holds with the measurement's accuracy counted against us
(measured + accuracy <= bound), so a pass is a pass whatever the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drills.measure import Availability, EventMetrics, PhaseStats
from drills.scenario.expect import Objective

# Tiers from the field (see README "Objectives"): the outage a mechanism is expected to keep to.
TEMPLATES_S: dict[str, tuple[float, str]] = {
    "carrier-grade": (0.050, "carrier-grade protection (SDH APS, G.8032, MPLS FRR): outage <= 50 ms"),
    "fast": (0.500, "fast sub-second (BFD-triggered routing, fast VRRP): outage <= 500 ms"),
    "vrrp-default": (5.0, "default timers (VRRP defaults ~3.61 s): outage <= 5 s"),
    "routing-default": (180.0, "routing defaults (OSPF/BGP without BFD): outage <= 180 s"),
    "mcptt": (0.300, "mission-critical push-to-talk (3GPP TS 22.179): interruption <= 300 ms"),
    "g114-voice": (0.150, "conversational voice (ITU-T G.114): interruption <= 150 ms"),
}


@dataclass(frozen=True)
class Verdict:
    objective: str
    probe: str
    event: str
    measured: str
    bound: str
    passed: bool | None  # None: could not be evaluated (said why in `measured`)
    # The figures as numbers, for readers that weigh the margin (the after-action report's
    # suggested rating): `value` None when there is none (never recovered, no traffic).
    # `unit` "s" or "%"; `at_least`: the bound is a minimum (availability), else a maximum.
    value: float | None = None
    accuracy: float = 0.0
    limit: float | None = None
    unit: str = ""
    at_least: bool = False


def _fmt(value_s: float | None, accuracy_s: float) -> str:
    if value_s is None:
        return "never recovered"
    return f"{value_s * 1e3:.1f} ms ± {accuracy_s * 1e3:.1f} ms"


def evaluate(
    objectives: Sequence[Objective],
    metrics: list[EventMetrics],
    step_labels: dict[str, str],
    phases: dict[str, list[PhaseStats]] | None = None,
    availability: dict[str, Availability] | None = None,
) -> list[Verdict]:
    """One verdict per objective × matching (probe, fault event) for outage and recovery bounds.
    Reversion events count only when an objective names no step.

    Loss and latency bounds are judged per probe: with a `step`, over that step's fault events
    (loss) or the drill's fault phase (latency); without one, over the whole drill after the
    warm-up (the "all" phase). Latency is the round trip (streams echo; application probes
    time their exchange)."""
    verdicts: list[Verdict] = []
    for objective in objectives:
        name = objective.label
        verdicts += _loss_and_latency(name, objective, metrics, step_labels, phases or {})
        verdicts += _availability(name, objective, availability or {})
        for m in metrics:
            if objective.probe is not None and m.probe != objective.probe:
                continue
            if objective.step is not None and (step_labels.get(m.event) != objective.step or m.kind != objective.event):
                continue
            checks: list[tuple[str, float | None, float]] = []
            if objective.max_outage_s is not None:
                checks.append(("outage", m.outage_s, objective.max_outage_s))
            if objective.max_recovery_s is not None:
                checks.append(("recovery", m.time_to_recover_s, objective.max_recovery_s))
            if objective.template is not None:
                checks.append(("outage", m.outage_s, TEMPLATES_S[objective.template][0]))
            for what, value, bound in checks:
                passed = value is not None and value + m.accuracy_s <= bound
                verdicts.append(
                    Verdict(
                        f"{name}: {what}",
                        m.probe,
                        f"{m.event} ({m.kind})",
                        _fmt(value, m.accuracy_s),
                        f"<= {bound * 1e3:g} ms",
                        passed,
                        value,
                        m.accuracy_s,
                        bound,
                        "s",
                    )
                )
    return verdicts


def _loss_and_latency(
    name: str,
    objective: Objective,
    metrics: list[EventMetrics],
    step_labels: dict[str, str],
    phases: dict[str, list[PhaseStats]],
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    probes = [objective.probe] if objective.probe is not None else sorted(phases)
    for probe in probes:
        stats = {p.phase: p for p in phases.get(probe, [])}
        scope = "all" if objective.step is None else "fault"
        if objective.max_loss_pct is not None:
            if objective.step is None:
                sent, lost = (stats["all"].sent, stats["all"].lost) if "all" in stats else (0, 0)
                event = "whole drill"
            else:
                chosen = [
                    m
                    for m in metrics
                    if m.probe == probe and m.kind == "apply" and step_labels.get(m.event) == objective.step
                ]
                sent, lost = sum(m.sent for m in chosen), sum(m.lost for m in chosen)
                event = f"{objective.step} ({objective.event})"
            loss_pct = 100.0 * lost / sent if sent else None
            # Loss is counted exactly; no accuracy to add. No traffic at all cannot pass.
            passed = loss_pct is not None and loss_pct <= objective.max_loss_pct
            measured = "no traffic" if loss_pct is None else f"{loss_pct:.3f} % ({lost} of {sent})"
            verdicts.append(
                Verdict(f"{name}: loss", probe, event, measured, f"<= {objective.max_loss_pct:g} %", passed,
                        loss_pct, 0.0, objective.max_loss_pct, "%")
            )
        if objective.latency is not None:
            phase = stats.get(scope)
            for label in ("p50", "p95", "p99"):
                bound = getattr(objective.latency, f"{label}_s")
                if bound is None:
                    continue
                value = getattr(phase, f"rtt_{label}_s") if phase is not None else None
                passed = value is not None and value <= bound
                measured = "no answered traffic" if value is None else f"{value * 1e3:.2f} ms"
                event = "whole drill" if scope == "all" else "fault phase"
                verdicts.append(
                    Verdict(f"{name}: RTT {label}", probe, event, measured, f"<= {bound * 1e3:g} ms", passed, value, 0.0, bound, "s")
                )
    return verdicts


def _availability(name: str, objective: Objective, measured: dict[str, Availability]) -> list[Verdict]:
    """Availability over the whole drill after the warm-up, per probe (a `step` does not narrow
    it: availability is a property of the service over the exercise)."""
    if objective.availability_pct is None:
        return []
    verdicts = []
    probes = [objective.probe] if objective.probe is not None else sorted(measured)
    for probe in probes:
        figure = measured.get(probe)
        passed = figure is not None and figure.windows > 0 and figure.pct >= objective.availability_pct
        text = (
            "no windows"
            if figure is None or not figure.windows
            else f"{figure.pct:.3f} % ({figure.windows - figure.unavailable} of {figure.windows} windows of {figure.window_s:g} s)"
        )
        verdicts.append(
            Verdict(
                f"{name}: availability", probe, "whole drill", text, f">= {objective.availability_pct:g} %", passed,
                figure.pct if figure is not None and figure.windows else None, 0.0, objective.availability_pct, "%", True,
            )
        )
    return verdicts
