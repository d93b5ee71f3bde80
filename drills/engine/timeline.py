"""Expand a scenario's timeline into a sorted list of actions on drill time (seconds from start).

A step with `for:` becomes an apply and a revert; `repeat` multiplies it; a `restore:` step
reverts an earlier step by id. Faults this version cannot run yet are reported, with where they
are, before anything is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drills.errors import Problem
from drills.scenario import model
from drills.scenario.resolved import Scenario

SUPPORTED_FAULTS = ("link-down", "note")


@dataclass(frozen=True)
class Action:
    """One thing to do at `at_s`: apply or revert the fault of `step` (occurrence `n`)."""

    at_s: float
    kind: str  # "apply" | "revert"
    step_index: int
    occurrence: int
    step: Any  # a model step (LinkDown, NoteStep, ...)

    @property
    def label(self) -> str:
        name = getattr(self.step, "id", None) or f"step{self.step_index}"
        return name if self.occurrence == 0 else f"{name}#{self.occurrence}"


def unsupported(scenario: Scenario) -> list[Problem]:
    """Steps whose fault this version cannot apply yet, located in the scenario file."""
    problems = []
    for i, step in enumerate(scenario.source.timeline):
        fault = getattr(step, "fault", None)
        if fault is not None and fault not in SUPPORTED_FAULTS:
            problems.append(
                Problem(
                    str(scenario.path),
                    0,
                    0,
                    f"timeline[{i}].fault",
                    f"fault '{fault}' is part of the format but `drill run` cannot apply it yet (supported: {', '.join(SUPPORTED_FAULTS)}); `drill up` still deploys this testbed",
                )
            )
    return problems


def expand(scenario: Scenario) -> list[Action]:
    """Every apply and revert, sorted by time (reverts first at equal times)."""
    actions: list[Action] = []
    by_id: dict[str, tuple[int, Any]] = {}
    for i, step in enumerate(scenario.source.timeline):
        if isinstance(step, model.RestoreStep):
            index, target = by_id[step.restore]
            actions.append(Action(step.at, "revert", index, 0, target))
            continue
        if step.id is not None:
            by_id[step.id] = (i, step)
        count = step.repeat.count if step.repeat else 1
        every = step.repeat.every if step.repeat else 0.0
        for n in range(count):
            start = step.at + n * every
            actions.append(Action(start, "apply", i, n, step))
            if step.duration is not None:
                actions.append(Action(start + step.duration, "revert", i, n, step))
    return sorted(actions, key=lambda a: (a.at_s, a.kind != "revert", a.step_index))
