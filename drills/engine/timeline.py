"""Expand a scenario's timeline into a sorted list of actions on drill time (seconds from start).

A step with `for:` becomes an apply and a revert; `repeat` multiplies it; a `restore:` step
reverts an earlier step by id; a `link-flap` becomes its down/up periods, with the jitter drawn
from a generator seeded by the scenario's seed and the step's position (replayable). Faults this
version cannot run yet are reported, with where they are, before anything is deployed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from drills.engine.faults import supported_kinds
from drills.errors import Problem
from drills.scenario.resolved import Scenario
from drills.scenario.steps import Flap, LinkDownStep, RestoreStep, SegmentDownStep, Step


@dataclass(frozen=True)
class Action:
    """One thing to do at `at_s`: apply or revert the fault of `step` (occurrence `n`)."""

    at_s: float
    kind: str  # "apply" | "revert"
    step_index: int
    occurrence: int
    step: Step  # the resolved step whose fault this acts on
    inject: int = -1  # the timeline entry that causes it (a `restore` step reverts another's fault); -1: step_index

    def __post_init__(self) -> None:
        if self.inject < 0:
            object.__setattr__(self, "inject", self.step_index)

    @property
    def label(self) -> str:
        return self.step.name if self.occurrence == 0 else f"{self.step.name}#{self.occurrence}"


def unsupported(scenario: Scenario) -> list[Problem]:
    """Steps whose fault this version cannot apply yet, located in the scenario file."""
    kinds = supported_kinds()
    problems = []
    for step in scenario.steps:
        if not isinstance(step, RestoreStep) and step.kind not in kinds:
            problems.append(
                scenario.problem(
                    ("timeline", step.index, "fault"),
                    f"fault '{step.kind}' is part of the format but `drill run` cannot apply it yet (supported: {', '.join(kinds)}); `drill up` still deploys this testbed",
                )
            )
    return problems


def step_rng(seed: int, step_index: int) -> random.Random:
    """The generator of one step's random choices: the same seed gives the same drill."""
    return random.Random(f"drills:{seed}:{step_index}")


def _flap(step: LinkDownStep | SegmentDownStep, flap: Flap, seed: int) -> list[Action]:
    rng = step_rng(seed, step.index)
    down_s = flap.period_s * flap.duty_pct / 100.0
    actions = []
    for n in range(flap.count):
        start = step.timing.at_s + n * flap.period_s + (rng.uniform(0.0, flap.jitter_s) if flap.jitter_s else 0.0)
        actions.append(Action(start, "apply", step.index, n, step))
        actions.append(Action(start + down_s, "revert", step.index, n, step))
    return actions


def expand(scenario: Scenario, seed: int = 0) -> list[Action]:
    """Every apply and revert, sorted by time (reverts first at equal times)."""
    actions: list[Action] = []
    steps = scenario.steps
    for step in steps:
        timing = step.timing
        if isinstance(step, RestoreStep):
            actions.append(Action(timing.at_s, "revert", step.target, 0, steps[step.target], step.index))
            continue
        if isinstance(step, LinkDownStep | SegmentDownStep) and step.flap is not None:
            actions.extend(_flap(step, step.flap, seed))
            continue
        for n in range(timing.repeat_count):
            start = timing.at_s + n * timing.repeat_every_s
            actions.append(Action(start, "apply", step.index, n, step))
            if timing.for_s is not None:
                actions.append(Action(start + timing.for_s, "revert", step.index, n, step))
    return sorted(actions, key=lambda a: (a.at_s, a.kind != "revert", a.step_index))
