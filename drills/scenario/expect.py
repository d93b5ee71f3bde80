"""Objectives (`expect:`), resolved: what each one bounds, in units named in its fields, and the
label its verdicts carry. Built at load from the parsed objectives (whose references the
resolver has checked); the analysis (drills.objectives) and `drill plan` read these, never the
parsed model. A leaf: records only.
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
