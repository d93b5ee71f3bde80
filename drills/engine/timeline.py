"""Expand a scenario's timeline into a sorted list of actions on drill time (seconds from start).

A step with `for:` becomes an apply and a revert; `repeat` multiplies it; a `restore:` step
reverts an earlier step by id; a `link-flap` becomes its down/up periods, with the jitter drawn
from a generator seeded by the scenario's seed and the step's position (replayable). Faults this
version cannot run yet are reported, with where they are, before anything is deployed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from drills.engine.faults import supported_kinds
from drills.errors import Problem
from drills.scenario import model
from drills.scenario.resolved import Scenario


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
    kinds = supported_kinds()
    problems = []
    for i, step in enumerate(scenario.source.timeline):
        fault = getattr(step, "fault", None)
        if fault is not None and fault not in kinds:
            problems.append(
                scenario.problem(
                    ("timeline", i, "fault"),
                    f"fault '{fault}' is part of the format but `drill run` cannot apply it yet (supported: {', '.join(kinds)}); `drill up` still deploys this testbed",
                )
            )
    return problems


def step_rng(seed: int, step_index: int) -> random.Random:
    """The generator of one step's random choices: the same seed gives the same drill."""
    return random.Random(f"drills:{seed}:{step_index}")


def _flap(step: model.LinkFlap, index: int, seed: int) -> list[Action]:
    rng = step_rng(seed, index)
    down_s = step.period * step.duty / 100.0
    actions = []
    for n in range(step.count):
        start = step.at + n * step.period + (rng.uniform(0.0, step.jitter) if step.jitter else 0.0)
        actions.append(Action(start, "apply", index, n, step))
        actions.append(Action(start + down_s, "revert", index, n, step))
    return actions


def expand(scenario: Scenario, seed: int = 0) -> list[Action]:
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
        if isinstance(step, model.LinkFlap):
            actions.extend(_flap(step, i, seed))
            continue
        count = step.repeat.count if step.repeat else 1
        every = step.repeat.every if step.repeat else 0.0
        for n in range(count):
            start = step.at + n * every
            actions.append(Action(start, "apply", i, n, step))
            if step.duration is not None:
                actions.append(Action(start + step.duration, "revert", i, n, step))
    return sorted(actions, key=lambda a: (a.at_s, a.kind != "revert", a.step_index))
