"""Objectives (`expect:`) checked against measured recovery figures: verdicts, not exceptions.

A bound is met only when it holds with the measurement's accuracy counted against us
(measured + accuracy <= bound), so a pass is a pass whatever the error.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.measure import EventMetrics
from drills.scenario import model

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


def _fmt(value_s: float | None, accuracy_s: float) -> str:
    if value_s is None:
        return "never recovered"
    return f"{value_s * 1e3:.1f} ms ± {accuracy_s * 1e3:.1f} ms"


def evaluate(
    objectives: list[model.Objective], metrics: list[EventMetrics], step_labels: dict[str, str]
) -> list[Verdict]:
    """One verdict per objective × matching (probe, fault event). Reversion events count only
    when an objective names no step."""
    verdicts: list[Verdict] = []
    for index, objective in enumerate(objectives):
        name = objective.name or objective.template or f"expect[{index}]"
        for m in metrics:
            if objective.probe is not None and m.probe != objective.probe:
                continue
            if objective.step is not None and (step_labels.get(m.event) != objective.step or m.kind != "apply"):
                continue
            checks: list[tuple[str, float | None, float]] = []
            if objective.max_outage is not None:
                checks.append(("outage", m.outage_s, objective.max_outage))
            if objective.max_recovery is not None:
                checks.append(("recovery", m.time_to_recover_s, objective.max_recovery))
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
                    )
                )
    return verdicts
