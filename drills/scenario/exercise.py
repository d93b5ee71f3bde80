"""An exercise, resolved: every timeline step's cue (how it is delivered in play, and its MSEL
fields), and the `exercise:` section (participants, objectives with capability targets, the
scenario clock). The checks run with the resolver's other drill checks, so one pass reports
every problem at its key: inject ids are unique, `after` names an earlier step, injects name
known objectives, capability targets name known `expect:` entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drills.scenario import model
from drills.scenario.diagnostics import suggest
from drills.scenario.reporter import Reporter
from drills.scenario.yamlpos import KeyPath

TRIGGER_TIME = "time"
TRIGGER_MANUAL = "manual"
TRIGGER_AFTER = "after"


@dataclass(frozen=True)
class Cue:
    """How one timeline step is delivered in play: `trigger` (time, manual, after), the step it
    follows (`after`, a step index), whether it is a decision gate, and its MSEL fields."""

    trigger: str = TRIGGER_TIME
    after: int | None = None
    gate: bool = False
    inject: model.InjectInfo | None = None

    def to_json(self) -> dict[str, Any]:
        """The MSEL fields as results and the control page show them (every key present)."""
        info = self.inject or model.InjectInfo()
        return {
            "phase": info.phase,
            "type": info.type,
            "method": info.method,
            "from": info.sender,
            "to": info.recipient,
            "title": info.title,
            "description": info.description,
            "expected_actions": info.expected_actions,
            "objectives": list(info.objectives),
            "controller": info.controller,
            "evaluator_notes": info.evaluator_notes,
            "scenario_time": info.scenario_time,
            "extra": dict(info.extra),
        }


PLANNED = Cue()


@dataclass(frozen=True)
class Exercise:
    """The `exercise:` section resolved (a scenario without one is an exercise of its name)."""

    title: str
    scenario_start: datetime | None
    participants: tuple[model.Participant, ...] = ()
    objectives: tuple[model.ExerciseObjective, ...] = ()

    def scenario_time(self, exercise_s: float) -> str | None:
        """The fictional clock at exercise time `exercise_s` (None without a scenario start)."""
        if self.scenario_start is None:
            return None
        return (self.scenario_start + timedelta(seconds=round(exercise_s))).isoformat()

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "scenario_start": self.scenario_start.isoformat() if self.scenario_start else None,
            "participants": [{"name": p.name, "organisation": p.organisation, "role": p.role} for p in self.participants],
            "objectives": [
                {
                    "id": o.id,
                    "title": o.title,
                    "capability_targets": [{"id": t.id, "title": t.title, "expect": list(t.expect)} for t in o.capability_targets],
                }
                for o in self.objectives
            ],
        }


def resolve_exercise(whole: model.ScenarioFile) -> Exercise:
    section = whole.exercise or model.ExerciseSection()
    start = datetime.fromisoformat(section.scenario_start) if section.scenario_start else None
    return Exercise(section.title or whole.name, start, tuple(section.participants), tuple(section.objectives))


def resolve_cues(timeline: list[Any]) -> tuple[Cue, ...]:
    """One cue per step, in timeline order (references already checked by `exercise_refs`)."""
    index_of = {step.id: i for i, step in enumerate(timeline) if step.id is not None}
    cues = []
    for step in timeline:
        trigger = step.trigger
        if isinstance(trigger, model.After):
            cues.append(Cue(TRIGGER_AFTER, index_of[trigger.after], step.gate, step.inject))
        else:
            cues.append(Cue(trigger, None, step.gate, step.inject))
    return tuple(cues)


def exercise_refs(reporter: Reporter, whole: model.ScenarioFile) -> None:
    """Check the inject ids, `after` references, the objectives injects name, and the `expect:`
    names capability targets name."""
    seen: dict[str, int] = {}
    for i, step in enumerate(whole.timeline):
        path: KeyPath = ("timeline", i)
        restore = isinstance(step, model.RestoreStep)
        # Two fault steps sharing an id are reported with the timeline; a `restore` step's id here.
        if step.id in seen and (restore or isinstance(whole.timeline[seen[step.id]], model.RestoreStep)):
            reporter.err((*path, "id"), f"step id '{step.id}' is used twice; give each step its own id")
        if isinstance(step.trigger, model.After):
            _after(reporter, path, step, seen, whole.timeline)
        if step.id is not None:
            seen.setdefault(step.id, i)
    section = whole.exercise
    if section is None:
        return
    known_ids: dict[str, KeyPath] = {}
    for o, objective in enumerate(section.objectives):
        _unique(reporter, known_ids, objective.id, ("exercise", "objectives", o, "id"))
        for t, target in enumerate(objective.capability_targets):
            tpath: KeyPath = ("exercise", "objectives", o, "capability_targets", t)
            _unique(reporter, known_ids, target.id, (*tpath, "id"))
            names = {e.name for e in whole.expect if e.name is not None}
            for n, name in enumerate(target.expect):
                if name not in names:
                    reporter.err(
                        (*tpath, "expect", n),
                        f"no objective under `expect:` is named '{name}'{suggest(name, names)}; give one `name: {name}`",
                    )
    if not known_ids:
        return  # without objectives, what injects name is the planners' free text
    for i, step in enumerate(whole.timeline):
        for n, ref in enumerate(step.inject.objectives if step.inject else ()):
            if ref not in known_ids:
                reporter.err(
                    ("timeline", i, "inject", "objectives", n),
                    f"no exercise objective or capability target has id '{ref}'{suggest(ref, known_ids)}",
                )


def _after(reporter: Reporter, path: KeyPath, step: Any, seen: Mapping[str, int], timeline: list[Any]) -> None:
    target = step.trigger.after
    where: KeyPath = (*path, "trigger", "after")
    if target not in seen:
        later = any(s.id == target for s in timeline)
        reporter.err(
            where,
            f"'{target}' is not an earlier step's id{suggest(target, seen) if not later else ''}; an inject follows a step "
            "listed before it" + ("" if later else " (give that step `id:`)"),
        )
    elif timeline[seen[target]].at > step.at:
        reporter.err(
            (*path, "at"),
            f"follows '{target}' (planned at {timeline[seen[target]].at:g} s) but is planned before it; plan it later",
        )


def _unique(reporter: Reporter, known: dict[str, KeyPath], ident: str, path: KeyPath) -> None:
    if ident in known:
        reporter.err(path, f"id '{ident}' is used twice (first at {reporter.line_of(known[ident])}); give each its own id")
    known.setdefault(ident, path)
