"""The after-action report (`drill aar RUN_DIR`): aar.html, aar.md and improvement-plan.csv from
a results directory, after HSEEP's AAR/IP (the exercise overview, the MSEL as played, per
objective and capability target the measured figures with a suggested rating beside the
evaluators' observations and their own rating, strengths, areas for improvement, and the
improvement plan for planners to fill in).

This module builds what both documents show (`Aar`, and the rows of each table, as text); the
HTML (drills.reports.aar_html) and the Markdown (drills.reports.aar_md) lay it out and escape
it; the rating rule is drills.reports.aar_rating's, the evaluators' overrides
drills.reports.aar_ratings'.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from drills.reports.aar_model import Exercise, ExerciseObjective, Inject, Observation, Target, read_exercise
from drills.reports.aar_rating import Suggestion, amount, suggest
from drills.reports.aar_ratings import Override, read_ratings
from drills.textsafe import visible

PLAN_FILE = "improvement-plan.csv"
PLAN_COLUMNS = [
    "Objective", "Capability target", "Rating", "Issue / area for improvement", "Evidence", "Corrective action",
    "Capability element", "Responsible organisation", "Organisation POC", "Start date", "Completion date",
]  # fmt: skip
# Observation texts an evaluator marks (HSEEP's "strength" and "area for improvement", AFI).
STRENGTH_MARKS = ("+", "strength:")
AREA_MARKS = ("afi:", "improve:")


@dataclass(frozen=True)
class TargetReport:
    target: Target
    objective: ExerciseObjective
    suggestion: Suggestion
    override: Override | None
    observations: tuple[Observation, ...]

    @property
    def final(self) -> str | None:
        return self.override.rating if self.override is not None else self.suggestion.rating


@dataclass(frozen=True)
class Aar:
    exercise: Exercise
    targets: tuple[TargetReport, ...]
    ratings_file: str | None  # the ratings.yaml read, if any
    objective_observations: dict[str, tuple[Observation, ...]]  # by objective id
    general_observations: tuple[Observation, ...]  # no objective, or one the exercise lacks


def build(results: dict[str, Any], ratings: Path | None = None) -> Aar:
    """The report's content from results.json and, when given and present, a ratings.yaml."""
    exercise = read_exercise(results)
    suggestions = {t.id: suggest(t, exercise) for t in exercise.targets()}
    overrides = read_ratings(ratings, list(suggestions)) if ratings is not None and ratings.exists() else {}
    by_target: dict[str, list[Observation]] = {}
    by_objective: dict[str, list[Observation]] = {}
    general = []
    objective_ids = {o.id for o in exercise.objectives}
    for obs in exercise.observations:
        if obs.objective in suggestions:
            by_target.setdefault(obs.objective, []).append(obs)
        elif obs.objective in objective_ids:
            by_objective.setdefault(obs.objective, []).append(obs)
        else:
            general.append(obs)
    targets = tuple(
        TargetReport(t, o, suggestions[t.id], overrides.get(t.id), tuple(by_target.get(t.id, ())))
        for o in exercise.objectives
        for t in o.targets
    )
    return Aar(
        exercise,
        targets,
        str(ratings) if ratings is not None and ratings.exists() else None,
        {k: tuple(v) for k, v in by_objective.items()},
        tuple(general),
    )


# -- times ---------------------------------------------------------------------------------


def tplus(seconds: float | None) -> str:
    """Exercise time as the MSEL writes it: T+hh:mm:ss, hundredths when there are any."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else "+"
    whole, cents = divmod(round(abs(seconds) * 100), 100)
    hours, rest = divmod(whole, 3600)
    text = f"T{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text + f".{cents:02d}" if cents else text


def held_before(exercise: Exercise, drill_s: float) -> float:
    """The time held before a drill instant: drill time minus it is exercise time (the MSEL's T+)."""
    total = 0.0
    for hold in exercise.holds:
        end = min(hold.end_s if hold.end_s is not None else drill_s, drill_s)
        total += max(0.0, end - hold.start_s)
    return total


def wall(exercise: Exercise, drill_s: float | None) -> str:
    """The wall-clock time (UTC) of a drill instant, from the run's started_at."""
    if drill_s is None or exercise.started_at is None:
        return "-"
    try:
        start = datetime.fromisoformat(exercise.started_at)
    except ValueError:
        return "-"
    return (start + timedelta(seconds=drill_s)).strftime("%H:%M:%S") + ("Z" if start.utcoffset() == timedelta(0) else "")


def scenario_time(ex: Exercise, inject: Inject) -> str:
    """The fictional clock of an inject: its own, else the scenario's start + its planned T+."""
    if inject.scenario_time:
        return inject.scenario_time
    if not ex.scenario_start:
        return "-"
    try:
        start = datetime.fromisoformat(ex.scenario_start)
    except ValueError:
        return "-"
    return (start + timedelta(seconds=inject.planned_s)).isoformat(timespec="seconds")


def span(seconds: float) -> str:
    """A length of time: `2.0 s`, `1 min 30.0 s`, `1 h 2 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.1f} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


# -- what the tables show ---------------------------------------------------------------------


def overview(aar: Aar) -> list[tuple[str, str]]:
    ex = aar.exercise
    facts = [
        ("Exercise", ex.title),
        ("Scenario", ex.scenario),
        ("Run", ex.run_id),
        ("Started (wall clock)", ex.started_at or "-"),
        ("Scenario clock at T+0", ex.scenario_start or "- (none stated)"),
        ("Duration (exercise time)", span(ex.duration_s)),
        ("Held", span(ex.held_s) + (f" in {len(ex.holds)} holds" if len(ex.holds) != 1 else " in 1 hold")),
        ("Control", "controllers in play (drill run --control)" if ex.controlled
         else "none: a dry run, the MSEL played as planned (manual injects at their planned time, gates passed)"),
        ("Drill outcome", ex.outcome),
    ]  # fmt: skip
    if ex.stop is not None:
        facts.append(("Stopped", stop_text(ex)))
    return facts


def stop_text(ex: Exercise) -> str:
    """When the stop word came, from whom, and its reason."""
    if ex.stop is None:
        return ""
    at = ex.stop.at_s
    exercise_s = ex.stop.exercise_s if ex.stop.exercise_s is not None else at - held_before(ex, at)
    return f"{tplus(exercise_s)} (drill time {at:.2f} s, {wall(ex, at)}) by {ex.stop.source}: {ex.stop.reason}"


def participant_rows(ex: Exercise) -> list[list[str]]:
    """Participants by role, then organisation: [role, organisation, names]."""
    groups: dict[tuple[str, str], list[str]] = {}
    for p in ex.participants:
        groups.setdefault((p.role, p.organisation), []).append(p.name)
    return [[role, org or "-", ", ".join(names)] for (role, org), names in sorted(groups.items())]


MSEL_COLUMNS = [
    "id", "title", "phase", "trigger", "planned T+", "scenario time", "delivered T+", "difference", "drill time", "wall clock",
    "how", "status", "by", "action", "objectives",
]  # fmt: skip
INJECT_STATUS_CLASS = {"skipped": "inconclusive", "not-delivered": "fail", "pending": "fail", "gated": "fail"}


def msel_row(ex: Exercise, inject: Inject) -> list[str]:
    trigger = inject.trigger + (f" {inject.after}" if inject.after else "") + (" + gate" if inject.gate else "")
    delivered = inject.delivered_exercise_s
    if delivered is None and inject.delivered_s is not None:
        delivered = inject.delivered_s - held_before(ex, inject.delivered_s)
    difference = "-" if delivered is None else f"{delivered - inject.planned_s:+.2f} s"
    return [
        inject.id, inject.title, inject.phase, trigger, tplus(inject.planned_s), scenario_time(ex, inject), tplus(delivered), difference,
        "-" if inject.delivered_s is None else f"{inject.delivered_s:.2f} s", wall(ex, inject.delivered_s),
        inject.how or "-", inject.status, inject.source or "-",
        f"{inject.fault}: {inject.detail}" if inject.detail and inject.detail != inject.fault else inject.fault, ", ".join(inject.objectives),
    ]  # fmt: skip


HOLD_COLUMNS = ["at T+", "drill time", "wall clock", "held", "reason", "by"]


def hold_rows(ex: Exercise) -> list[list[str]]:
    """The exercise clock stands still while held: a hold is at one T+, over a span of drill time."""
    rows = []
    for hold in ex.holds:
        end = "end" if hold.end_s is None else f"{hold.end_s:.2f} s"
        rows.append([
            tplus(hold.start_s - held_before(ex, hold.start_s)), f"{hold.start_s:.2f} s .. {end}",
            f"{wall(ex, hold.start_s)} .. {wall(ex, hold.end_s) if hold.end_s is not None else 'end'}",
            "held at the end" if hold.end_s is None else span(hold.end_s - hold.start_s), hold.reason, hold.source,
        ])  # fmt: skip
    return rows


LOG_COLUMNS = ["T+", "drill time", "by", "command", "done", "message"]


def log_rows(ex: Exercise) -> list[list[str]]:
    return [
        [tplus(g.at_s - held_before(ex, g.at_s)), f"{g.at_s:.2f} s", g.source, f"{g.command} {g.argument}".strip(),
         "yes" if g.ok else "refused", g.message]
        for g in ex.log
    ]


RATING_COLUMNS = ["objective", "capability target", "suggested", "final", "rated by", "why (suggested)"]


def rating_rows(aar: Aar) -> list[list[str]]:
    return [
        [r.objective.id, f"{r.target.id} {r.target.title}", r.suggestion.rating or "-", r.final or "-",
         (r.override.by or "evaluator") if r.override else "(suggested)", "; ".join(r.suggestion.reasons[:3])
         + (f" (+{len(r.suggestion.reasons) - 3} more)" if len(r.suggestion.reasons) > 3 else "")]
        for r in aar.targets
    ]  # fmt: skip


FIGURE_COLUMNS = ["grade", "objective", "probe", "event", "measured", "bound", "margin", "why"]


def figure_rows(report: TargetReport) -> list[list[str]]:
    return [
        [g.grade, g.figure.objective, g.figure.probe, g.figure.event, g.figure.measured, g.figure.bound,
         "-" if g.margin is None else amount(g.margin, g.figure.unit), g.why]
        for g in report.suggestion.figures
    ]  # fmt: skip


def observation_line(obs: Observation) -> str:
    return f"{tplus(obs.exercise_s)} ({obs.source}): {obs.text}"


def marked(obs: Observation, marks: tuple[str, ...]) -> bool:
    return obs.text.lstrip().lower().startswith(marks)


def _all_observations(aar: Aar) -> list[Observation]:
    out = [o for r in aar.targets for o in r.observations]
    out += [o for group in aar.objective_observations.values() for o in group]
    return out + list(aar.general_observations)


def strengths(aar: Aar) -> list[str]:
    """Targets rated P, and observations marked as strengths (`+` or `strength:`)."""
    out = [f"{r.target.id} {r.target.title}: rated P" for r in aar.targets if r.final == "P"]
    out += [f"{o.objective or 'general'}: {observation_line(o)}" for o in _all_observations(aar) if marked(o, STRENGTH_MARKS)]
    return out


@dataclass(frozen=True)
class Area:
    """An area for improvement: one row of the improvement plan."""

    objective: str
    target: str
    rating: str
    issue: str
    evidence: str


def areas(aar: Aar) -> list[Area]:
    """Targets rated M or U (final rating), with their evidence; observations marked `afi:`."""
    out = []
    for r in aar.targets:
        if r.final not in ("M", "U"):
            continue
        evidence = list(r.suggestion.reasons)
        if r.override is not None and r.override.reason:
            evidence.insert(0, f"{r.override.by or 'evaluator'}: {r.override.reason}")
        evidence += [observation_line(o) for o in r.observations]
        issue = f"{r.target.title}: {RATING_WORDS[r.final]}"
        out.append(Area(f"{r.objective.id} {r.objective.title}", f"{r.target.id} {r.target.title}", r.final, issue, "; ".join(evidence)))
    # An evaluator's own area for improvement: a row of its own (its corrective action is its own).
    objectives = {o.id: f"{o.id} {o.title}" for o in aar.exercise.objectives}
    targets = {r.target.id: (objectives[r.objective.id], f"{r.target.id} {r.target.title}") for r in aar.targets}
    for o in _all_observations(aar):
        if marked(o, AREA_MARKS):
            ident = o.objective or ""
            objective, target = targets.get(ident, (objectives.get(ident, ident), ""))
            out.append(Area(objective, target, "", o.text.lstrip().split(":", 1)[1].strip(), observation_line(o)))
    return out


RATING_WORDS = {"M": "performed with major challenges", "U": "unable to be performed", "S": "some challenges", "P": "performed"}


def render_plan_csv(aar: Aar) -> bytes:
    """improvement-plan.csv: one row per area for improvement; the planners' cells empty.

    UTF-8 with a byte-order mark: Excel opens a CSV without one in the machine's legacy code
    page and garbles every non-ASCII name (Tōkyō, Zürich); LibreOffice and Python's csv read
    the mark fine. Control characters show as escapes (drills.textsafe). A cell that starts like a formula (=, +, -, @) gets a leading apostrophe, so
    a spreadsheet shows scenario text as text and never evaluates it (CSV injection)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PLAN_COLUMNS)
    for area in areas(aar):
        writer.writerow([_cell(c) for c in (area.objective, area.target, area.rating, area.issue, area.evidence)] + [""] * 6)
    return "\ufeff".encode() + buffer.getvalue().encode()


def _cell(text: str) -> str:
    text = visible(text)  # control and bidi characters shown as escapes, as in every report
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
