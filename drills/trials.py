"""Repeated trials of one drill (`drill run --trials N`): min / median / max of every figure.

Vendors quote failover figures over repeated trials; each trial is a complete run (its own
testbed, its own results directory), and this module only aggregates their results.json.
Partition pairs (`partition_pairs`) get their own spreads (`aggregate_pairs`): detect and
recovery times, and what each trial observed, so a pair cut as intended in some trials and
not in others shows. Known answers (`known_answers`) make the validation table (`validation`):
each answer's window, the measured figure's min / median / max ± the largest accuracy, and
the verdict over the trials.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class FigureSpread:
    """One figure over the trials that measured it (a stream's, or a partition pair's); `missing`
    counts the trials where it was null (never recovered; for a pair's detect: nothing lost)."""

    min_s: float | None
    median_s: float | None
    max_s: float | None
    missing: int
    accuracy_s: float  # the largest accuracy bound of the trials


def _figure(found: list[dict[str, Any]], figure: str, accuracy: str) -> FigureSpread:
    """`figure` over the trials' entries in `found` (null: missing), with their largest `accuracy`."""
    values = [float(p[figure]) for p in found if p[figure] is not None]
    return FigureSpread(
        min_s=min(values) if values else None,
        median_s=statistics.median(values) if values else None,
        max_s=max(values) if values else None,
        missing=len(found) - len(values),
        accuracy_s=max((float(p[accuracy]) for p in found), default=0.0),
    )


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
            f = _figure(found, figure, "accuracy_s")
            spreads.append(
                Spread(
                    probe=probe,
                    event=event,
                    figure=figure,
                    min_s=f.min_s,
                    median_s=f.median_s,
                    max_s=f.max_s,
                    never=f.missing,
                    trials=len(found),
                    accuracy_s=f.accuracy_s,
                )
            )
    return spreads


@dataclass(frozen=True)
class PairSpread:
    """One (partition step, source, target) pair over the trials. `observed` has one entry per
    trial, in trial order (None: the pair was not in that trial's results, e.g. the drill
    stopped before the step); `matched` counts trials where observed == intended, `mismatched`
    those where it did not, `unjudged` those where it could not be judged."""

    step: str
    source: str
    target: str
    expected: str
    trials: int  # trials that have the pair
    observed: list[str | None]
    matched: int
    mismatched: int
    unjudged: int
    time_to_detect_s: FigureSpread
    time_to_recover_s: FigureSpread

    @property
    def consistent(self) -> bool:
        """Observed as intended in every trial that has the pair."""
        return self.matched == self.trials


def aggregate_pairs(runs: list[dict[str, Any]]) -> list[PairSpread]:
    """Spreads of every partition pair of every trial, in order of first appearance."""
    per_run: list[dict[tuple[str, str, str], dict[str, Any]]] = [
        {(p["step"], p["source"], p["target"]): p for p in run.get("partition_pairs", [])} for run in runs
    ]
    keys: list[tuple[str, str, str]] = []
    for pairs in per_run:
        keys += [key for key in pairs if key not in keys]
    spreads = []
    for key in keys:
        found = [pairs[key] for pairs in per_run if key in pairs]
        matches = [p["matches"] for p in found]
        spreads.append(
            PairSpread(
                step=key[0],
                source=key[1],
                target=key[2],
                expected=found[0]["expected"],
                trials=len(found),
                observed=[pairs[key]["observed"] if key in pairs else None for pairs in per_run],
                matched=matches.count(True),
                mismatched=matches.count(False),
                unjudged=sum(1 for m in matches if m is None),
                time_to_detect_s=_figure(found, "time_to_detect_s", "detect_accuracy_s"),
                time_to_recover_s=_figure(found, "time_to_recover_s", "recover_accuracy_s"),
            )
        )
    return spreads


def pair_spreads_json(spreads: list[PairSpread]) -> list[dict[str, Any]]:
    """trials.json `pair_spreads`: each spread with `consistent` spelled out."""
    return [asdict(s) | {"consistent": s.consistent} for s in spreads]


@dataclass(frozen=True)
class ValidationRow:
    """One known answer (at one event of its step) over the trials: a row of the validation
    table. `verdict` is PASS only when every trial passed; FAIL when any trial failed (a known
    answer that held in some trials and not in others is not a known answer); INCONCLUSIVE
    otherwise (a mix of passes and trials that could not judge it, or none judged). A trial
    without the answer's entry (the drill stopped before the event) counts as inconclusive."""

    name: str
    probe: str
    step: str
    event: str
    figure: str
    value_s: float
    low_s: float
    high_s: float
    tolerance_s: float | None
    source: str
    trials: int
    measured: FigureSpread  # over the trials that measured the figure
    passed: int
    failed: int
    inconclusive: int

    @property
    def verdict(self) -> str:
        if self.failed:
            return "FAIL"
        return "PASS" if self.passed == self.trials else "INCONCLUSIVE"


def validation(runs: list[dict[str, Any]]) -> list[ValidationRow]:
    """The validation table: every known answer × event of every trial's `known_answers`, in
    order of first appearance, with min / median / max of the measured figure and the largest
    accuracy over the trials that measured it."""
    per_run = [{(k["name"], k["event"]): k for k in run.get("known_answers", [])} for run in runs]
    keys: list[tuple[str, str]] = []
    for answers in per_run:
        keys += [key for key in answers if key not in keys]
    rows = []
    for key in keys:
        found = [answers[key] for answers in per_run if key in answers]
        measured = [k for k in found if k["accuracy_s"] is not None]
        verdicts = [k["verdict"] for k in found]
        first = found[0]
        rows.append(
            ValidationRow(
                name=first["name"],
                probe=first["probe"],
                step=first["step"],
                event=first["event"],
                figure=first["figure"],
                value_s=first["value_s"],
                low_s=first["low_s"],
                high_s=first["high_s"],
                tolerance_s=first["tolerance_s"],
                source=first["source"],
                trials=len(runs),
                measured=_figure(measured, "measured_s", "accuracy_s"),
                passed=verdicts.count("pass"),
                failed=verdicts.count("fail"),
                inconclusive=len(runs) - verdicts.count("pass") - verdicts.count("fail"),
            )
        )
    return rows


def validation_json(rows: list[ValidationRow]) -> list[dict[str, Any]]:
    """trials.json `validation`: each row with its verdict spelled out."""
    return [asdict(row) | {"verdict": row.verdict} for row in rows]


def overall_outcome(outcomes: list[str]) -> str:
    """A missed objective in any trial fails the set; else any inconclusive trial makes it inconclusive."""
    if "failed" in outcomes:
        return "failed"
    if "inconclusive" in outcomes:
        return "inconclusive"
    return "passed"
