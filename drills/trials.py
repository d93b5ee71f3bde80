"""Repeated trials of one drill (`drill run --trials N`): min / median / max of every figure.

Vendors quote failover figures over repeated trials; each trial is a complete run (its own
testbed, its own results directory), and this module only aggregates their results.json.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

FIGURES = ("outage_s", "max_loss_period_s", "time_to_recover_s")


@dataclass(frozen=True)
class Spread:
    """One figure of one (probe, event) over the trials; `never` counts trials that never recovered."""

    probe: str
    event: str
    figure: str
    min_s: float | None
    median_s: float | None
    max_s: float | None
    never: int
    trials: int
    accuracy_s: float  # the largest accuracy bound of the trials


def aggregate(runs: list[dict[str, Any]]) -> list[Spread]:
    """Spreads of every figure measured in every trial (events missing from a trial are skipped)."""
    keys: list[tuple[str, str]] = []
    for run in runs:
        for m in run["metrics"]:
            key = (m["probe"], f"{m['event']} ({m['kind']})")
            if key not in keys:
                keys.append(key)
    spreads = []
    for probe, event in keys:
        found = [
            m for run in runs for m in run["metrics"] if m["probe"] == probe and f"{m['event']} ({m['kind']})" == event
        ]
        for figure in FIGURES:
            values = [float(m[figure]) for m in found if m[figure] is not None]
            spreads.append(
                Spread(
                    probe=probe,
                    event=event,
                    figure=figure,
                    min_s=min(values) if values else None,
                    median_s=statistics.median(values) if values else None,
                    max_s=max(values) if values else None,
                    never=len(found) - len(values),
                    trials=len(found),
                    accuracy_s=max(float(m["accuracy_s"]) for m in found),
                )
            )
    return spreads


def overall_outcome(outcomes: list[str]) -> str:
    """A missed objective in any trial fails the set; else any inconclusive trial makes it inconclusive."""
    if "failed" in outcomes:
        return "failed"
    if "inconclusive" in outcomes:
        return "inconclusive"
    return "passed"
