"""Objectives (`expect:`) and known answers (`expect_known:`), resolved: what each one bounds,
in units named in its fields, and the label its verdicts carry. Built at load from the parsed
ones (whose references the resolver has checked); the analysis (drills.objectives, drills.known)
and `drill plan` read these, never the parsed model. A leaf: records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drills.scenario import model


@dataclass(frozen=True)
class LatencyBound:
    """Round-trip percentiles an objective bounds (None: not bounded)."""

    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None


@dataclass(frozen=True)
class Objective:
    """One objective. `probe` None judges every probe; `step` (a timeline step id) None, every
    fault. `event` is which side of the step is judged: "apply" (the fault) or "revert" (how the
    network came back). A `template` bounds the outage by the tier it names."""

    label: str  # what its verdicts are called: its name, else its template, else `expect[i]`
    name: str | None = None  # as written
    template: str | None = None
    probe: str | None = None
    step: str | None = None
    event: str = "apply"
    max_outage_s: float | None = None
    max_recovery_s: float | None = None
    max_loss_pct: float | None = None
    latency: LatencyBound | None = None
    availability_pct: float | None = None


def resolve_objective(index: int, objective: model.Objective) -> Objective:
    """The parsed objective at `expect[index]` as its record."""
    latency = objective.latency
    return Objective(
        label=objective.name or objective.template or f"expect[{index}]",
        name=objective.name,
        template=objective.template,
        probe=objective.probe,
        step=objective.step,
        event=objective.event,
        max_outage_s=objective.max_outage,
        max_recovery_s=objective.max_recovery,
        max_loss_pct=objective.max_loss,
        latency=LatencyBound(latency.p50, latency.p95, latency.p99) if latency is not None else None,
        availability_pct=objective.availability,
    )


def resolve_objectives(expect: Sequence[model.Objective]) -> tuple[Objective, ...]:
    """Every objective as its record, in file order."""
    return tuple(resolve_objective(index, objective) for index, objective in enumerate(expect))


# The figure a known answer names, as EventMetrics (drills.measure) calls it.
KNOWN_FIGURES = {"outage": "outage_s", "time_to_recover": "time_to_recover_s", "max_loss_period": "max_loss_period_s"}


@dataclass(frozen=True)
class KnownAnswer:
    """One known answer (`expect_known:`), resolved: the figure of one probe at one step's event
    must lie in [low_s, high_s] (value ± tolerance, or the window as written), accuracy included."""

    name: str
    probe: str
    step: str
    event: str  # "apply" or "revert"
    figure: str  # "outage" | "time_to_recover" | "max_loss_period", as written
    value_s: float
    low_s: float
    high_s: float
    source: str
    tolerance_s: float | None = None  # None: a window was written

    @property
    def metric_field(self) -> str:
        """The EventMetrics field of `figure` (outage_s, time_to_recover_s, max_loss_period_s)."""
        return KNOWN_FIGURES[self.figure]


def resolve_known(known: Sequence[model.KnownAnswer]) -> tuple[KnownAnswer, ...]:
    """Every known answer as its record, in file order (the resolver has checked that each has
    exactly one of `tolerance` and `window`)."""
    records = []
    for answer in known:
        if answer.window is not None:
            low_s, high_s = answer.window
        else:
            tolerance_s = answer.tolerance or 0.0
            low_s, high_s = max(0.0, answer.value - tolerance_s), answer.value + tolerance_s
        records.append(
            KnownAnswer(
                name=answer.name,
                probe=answer.probe,
                step=answer.step,
                event=answer.event,
                figure=answer.figure,
                value_s=answer.value,
                low_s=low_s,
                high_s=high_s,
                source=answer.source,
                tolerance_s=answer.tolerance if answer.window is None else None,
            )
        )
    return tuple(records)
