"""Known answers (`expect_known:`) judged against measured figures: a verdict per answer and event.

A known answer PASSES when the whole interval [measured - accuracy, measured + accuracy] (from 0
at the lowest: no figure is negative) lies inside its window [value - tolerance, value + tolerance] (or the window as written): whatever
the measurement's error, the true figure is then inside. It FAILS when any part of that
interval lies outside (the figure may be right, but drills cannot show it: a straddle is not a
pass). It is INCONCLUSIVE when there is nothing to judge: the figure is missing (traffic never
recovered), the probe's baseline was not clean, or the event was never measured (the drill
stopped before it). A fail makes the drill fail, like a missed objective; an inconclusive answer
makes an otherwise passing drill inconclusive, never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drills.measure import Baseline, EventMetrics
from drills.scenario.expect import KnownAnswer

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class KnownVerdict:
    """One known answer judged at one event of its step (a repeated step has several)."""

    name: str
    probe: str
    step: str
    event: str  # the event as the metrics name it, "cut (apply)"; the step and side when unmeasured
    figure: str  # outage | time_to_recover | max_loss_period
    value_s: float
    low_s: float
    high_s: float
    tolerance_s: float | None  # None: a window was written
    source: str
    measured_s: float | None  # None: not measured, or never recovered
    accuracy_s: float | None  # None: not measured
    verdict: str  # pass | fail | inconclusive
    reason: str  # why, in words

    @property
    def passed(self) -> bool | None:
        """True (pass), False (fail), None (inconclusive)."""
        return {PASS: True, FAIL: False}.get(self.verdict)


def judge_one(answer: KnownAnswer, metric: EventMetrics | None, baseline: Baseline | None) -> KnownVerdict:
    """The verdict of `answer` on one measured event (`metric` None: never measured)."""
    measured = getattr(metric, answer.metric_field) if metric is not None else None
    accuracy = metric.accuracy_s if metric is not None else None
    event = f"{metric.event} ({metric.kind})" if metric is not None else f"{answer.step} ({answer.event})"
    if metric is None:
        verdict, reason = INCONCLUSIVE, "the event was not measured (did the drill stop before it?)"
    elif baseline is None or not baseline.clean:
        verdict, reason = INCONCLUSIVE, "the probe's baseline was not clean: nothing can be concluded"
    elif measured is None or accuracy is None:
        verdict, reason = INCONCLUSIVE, "traffic never recovered: the figure is missing"
    # No figure is below zero, whatever the accuracy: the interval starts at 0 at the lowest (a
    # failover measured at 1 ms ± 2 ms is inside a window from 0).
    elif answer.low_s <= max(0.0, measured - accuracy) and measured + accuracy <= answer.high_s:
        verdict, reason = PASS, "measured ± accuracy lies inside the window"
    elif measured + accuracy < answer.low_s or measured - accuracy > answer.high_s:
        side = "below" if measured + accuracy < answer.low_s else "above"
        verdict, reason = FAIL, f"measured ± accuracy lies {side} the window"
    else:
        verdict, reason = FAIL, "measured ± accuracy reaches outside the window (the accuracy is too coarse, or the figure is off)"
    return KnownVerdict(
        name=answer.name,
        probe=answer.probe,
        step=answer.step,
        event=event,
        figure=answer.figure,
        value_s=answer.value_s,
        low_s=answer.low_s,
        high_s=answer.high_s,
        tolerance_s=answer.tolerance_s,
        source=answer.source,
        measured_s=measured,
        accuracy_s=accuracy,
        verdict=verdict,
        reason=reason,
    )


def judge(
    known: Sequence[KnownAnswer],
    metrics: Sequence[EventMetrics],
    step_labels: Mapping[str, str],
    baselines: Mapping[str, Baseline],
) -> list[KnownVerdict]:
    """One verdict per known answer × event of its step on its probe (each repetition of a
    repeated step is an event), in file order; one inconclusive verdict for an answer whose
    event was never measured. `step_labels` maps an event label to its step id."""
    verdicts: list[KnownVerdict] = []
    for answer in known:
        found = [
            m
            for m in metrics
            if m.probe == answer.probe and m.kind == answer.event and step_labels.get(m.event) == answer.step
        ]
        baseline = baselines.get(answer.probe)
        verdicts += [judge_one(answer, m, baseline) for m in found] or [judge_one(answer, None, baseline)]
    return verdicts


def expected_text(value_s: float, low_s: float, high_s: float, tolerance_s: float | None) -> str:
    """The known answer as the tables write it: `2000.0 ± 10.0 ms`, or `3610.0 ms in [3400.0, 3900.0] ms`."""
    if tolerance_s is not None:
        return f"{value_s * 1e3:.1f} ± {tolerance_s * 1e3:.1f} ms"
    return f"{value_s * 1e3:.1f} ms in [{low_s * 1e3:.1f}, {high_s * 1e3:.1f}] ms"


def measured_text(measured_s: float | None, accuracy_s: float | None) -> str:
    """A measured figure as the tables write it: `2001.0 ± 2.1 ms`, `never recovered`, `not measured`."""
    if accuracy_s is None:
        return "not measured"
    if measured_s is None:
        return "never recovered"
    return f"{measured_s * 1e3:.1f} ± {accuracy_s * 1e3:.1f} ms"
