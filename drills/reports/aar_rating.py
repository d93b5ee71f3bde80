"""The suggested rating of each capability target (HSEEP's P/S/M/U), from what was measured and
how the target's injects were played. The evaluators confirm or override it (ratings.yaml,
drills.reports.aar_ratings); a suggestion is evidence, not a judgement.

The rule (stated in the report, RULE below), the worst grade found wins (P < S < M < U):

- each measured figure of the target (the verdicts of its `expect:` names):
  P when it met its bound with margin: measured + accuracy <= bound and the margin left,
  bound - (measured + accuracy), is at least the accuracy again (the figure would still pass
  were the error twice as large); S when it met its bound only within that (or its margin cannot
  be told: a results.json without the figures as numbers); M when it missed its bound (drills
  counts the accuracy against the figure, so a figure inside its bound by less than its accuracy
  is a miss); U when it has no value (never recovered, no traffic) or could not be evaluated;
- the target's injects (those naming the target or its objective in `inject.objectives`, and
  those whose fault events its figures judge): S when one waited at a decision gate until
  released, was fired by hand although its trigger is a time or another inject (a `manual`
  inject fired by hand is played as planned and lowers nothing), was skipped, or the timeline
  was held while it was in play (a hold overlapping its delivery .. revert); U when one was
  never delivered (the exercise was stopped before it, or the drill ended first);
- no figure at all: U when the target names `expect:` entries (they could not be evaluated);
  none suggested when it names none (the evaluators rate it from their observations).
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.reports.aar_model import Exercise, Figure, Inject, Target

RATINGS = {
    "P": "performed without challenges",
    "S": "performed with some challenges",
    "M": "performed with major challenges",
    "U": "unable to be performed",
}
_ORDER = "PSMU"

RULE = (
    "Suggested rating (the worst that applies): "
    "P: every measured figure met its bound with margin (measured + accuracy <= bound, and the margin left at least the accuracy again). "
    "S: a figure met its bound only within its accuracy, or one of the target's injects waited at a decision gate, was fired by hand "
    "although planned for a time (a manual inject fired by hand is played as planned), was skipped, or the timeline was held while it "
    "was in play. "
    "M: a figure missed its bound (the accuracy counts against it). "
    "U: a figure never recovered or could not be evaluated, the target's figures are missing, or one of its injects was never "
    "delivered (the exercise was stopped first). A target with no measured figure (no expect: names) gets no suggestion: "
    "the evaluators rate it. The evaluators' rating (ratings.yaml) is final."
)


@dataclass(frozen=True)
class GradedFigure:
    figure: Figure
    grade: str  # P, S, M or U
    why: str
    margin: float | None  # in the figure's unit; None when it cannot be told


@dataclass(frozen=True)
class Suggestion:
    """A target's suggested rating (None: none can be suggested) and every reason for it."""

    rating: str | None
    reasons: tuple[str, ...]
    figures: tuple[GradedFigure, ...]
    injects: tuple[Inject, ...]


def worst(grades: list[str]) -> str | None:
    return max(grades, key=_ORDER.index) if grades else None


def amount(value: float, unit: str) -> str:
    """A figure in its unit as people read it (ms below 10 s)."""
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if abs(value) < 10 else f"{value:.2f} s"
    return f"{value:.3f} %" if unit == "%" else f"{value:g}"


def grade(figure: Figure) -> GradedFigure:
    """One figure's grade by the rule above, and why in words."""
    if figure.passed is None:
        return GradedFigure(figure, "U", f"could not be evaluated ({figure.measured})", None)
    if not figure.passed:
        if figure.value is None and (figure.numbers or figure.measured == "never recovered"):
            return GradedFigure(figure, "U", f"no figure: {figure.measured}", None)
        return GradedFigure(figure, "M", f"missed: measured {figure.measured}, bound {figure.bound}", _margin(figure))
    margin = _margin(figure)
    if margin is None:
        return GradedFigure(figure, "S", "met; its margin cannot be told (the figure was not recorded as a number)", None)
    if margin >= figure.accuracy:
        return GradedFigure(figure, "P", f"met with margin {amount(margin, figure.unit)}", margin)
    return GradedFigure(
        figure, "S", f"met only within its accuracy: margin {amount(margin, figure.unit)} < accuracy "
        f"{amount(figure.accuracy, figure.unit)}", margin,
    )  # fmt: skip


def _margin(figure: Figure) -> float | None:
    """What is left between the figure (its accuracy counted against it) and its bound."""
    if figure.value is None or figure.limit is None:
        return None
    if figure.at_least:
        return figure.value - figure.accuracy - figure.limit
    return figure.limit - (figure.value + figure.accuracy)


def figures_of(target: Target, figures: tuple[Figure, ...]) -> list[Figure]:
    """The verdicts of the target's `expect:` names: objectives.py calls them `NAME: what`."""
    return [f for f in figures if any(f.objective == n or f.objective.startswith(n + ": ") for n in target.expect)]


def _event_step(event: str) -> str:
    """`cut-1#2 (apply)` -> `cut-1`: a verdict's event is its step's label, kind in brackets."""
    return event.rsplit(" (", 1)[0].split("#", 1)[0]


def injects_of(target: Target, exercise: Exercise, figures: list[Figure]) -> list[Inject]:
    steps = {_event_step(f.event) for f in figures}
    return [
        i for i in exercise.injects if target.id in i.objectives or target.objective in i.objectives or i.id in steps
    ]


def held_during(inject: Inject, exercise: Exercise) -> list[str]:
    """The holds (not its own gate's) in force while the inject was in play: from its delivery
    to its revert (a message-only inject: its delivery instant; a fault never reverted: the end)."""
    if inject.delivered_s is None:
        return []
    end = inject.reverted_s if inject.reverted_s is not None else inject.delivered_s
    if inject.reverted_s is None and inject.fault not in ("", "note"):
        end = float("inf")
    out = []
    for hold in exercise.holds:
        hold_end = hold.end_s if hold.end_s is not None else float("inf")
        if hold.start_s <= end and hold_end >= inject.delivered_s and hold.reason != f"gate {inject.id}":
            out.append(hold.reason or "hold")
    return out


def _inject_reasons(inject: Inject, exercise: Exercise) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    name = f"inject {inject.id}"
    if inject.status == "skipped":
        out.append(("S", f"{name} was skipped"))
    elif inject.status != "delivered":
        if exercise.stop is not None:
            out.append(("U", f"{name} was never delivered: the exercise was stopped first ({exercise.stop.reason})"))
        else:
            out.append(("U", f"{name} was never delivered ({inject.status})"))
    if inject.how == "released":
        out.append(("S", f"{name} waited at a decision gate until released"))
    elif inject.how == "fired":
        by = f" ({inject.source})" if inject.source else ""
        if inject.trigger == "manual":  # its trigger says a controller fires it: played as planned
            out.append(("P", f"{name} was fired by hand{by}, as planned (trigger: manual)"))
        else:
            out.append(("S", f"{name} was fired by hand{by} instead of at its planned time (trigger: {inject.trigger})"))
    for reason in held_during(inject, exercise):
        out.append(("S", f"the timeline was held while {name} was in play ({reason})"))
    return out


def suggest(target: Target, exercise: Exercise) -> Suggestion:
    """The target's suggested rating by the rule above, with every reason found."""
    figures = figures_of(target, exercise.figures)
    graded = [grade(f) for f in figures]
    injects = injects_of(target, exercise, figures)
    found: list[tuple[str, str]] = [(g.grade, f"{g.figure.objective} ({g.figure.probe}, {g.figure.event}): {g.why}") for g in graded]
    for inject in injects:
        found += _inject_reasons(inject, exercise)
    if not figures:
        if not target.expect:
            reasons = ["no measured figure is mapped to this target (no expect: names): the evaluators rate it"]
            return Suggestion(None, tuple(reasons + [r for _, r in found]), (), tuple(injects))
        found.append(("U", f"no figure of {', '.join(target.expect)} was measured: could not be evaluated"))
    return Suggestion(worst([g for g, _ in found]), tuple(r for _, r in found), tuple(graded), tuple(injects))
