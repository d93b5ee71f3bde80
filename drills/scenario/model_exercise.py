"""The parsed model of an exercise: the `exercise:` section (participants, objectives and their
capability targets, the scenario clock) and what makes a timeline step an inject of the MSEL
(its trigger, its decision gate and the MSEL's fields).

Part of the parsed model (drills.scenario.model re-exports all of it). The references (an
inject `after` another, objectives named by injects, `expect:` names named by capability
targets) are checked by drills.scenario.exercise, once the whole file is known.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from drills.scenario import limits, values
from drills.scenario.fields import Name, Strict
from drills.scenario.values import validator

MAX_PARTICIPANTS = 500
MAX_OBJECTIVES = 200
MAX_TARGETS = 200  # per objective
MAX_LIST_ITEMS = 100  # an inject's objectives, a target's expect names
MAX_EXTRA_COLUMNS = 64  # the MSEL's columns drills does not know, kept for the round trip
MAX_FIELD_BYTES = 16_384  # one MSEL cell

Text = Annotated[str, Field(max_length=MAX_FIELD_BYTES), AfterValidator(validator(values.command_text))]
"""Free text from a planner's spreadsheet: bounded, no control characters but tab and newline."""

ExerciseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", max_length=limits.MAX_NAME_BYTES)]
"""An objective's or capability target's id, as planners number them: `O1`, `O1.2`, `CT-3`."""


def _scenario_time(value: object) -> str:
    """ISO 8601 date and time (YAML may have read it as a datetime already), kept as written
    but checked; minutes are enough (`2026-03-11T09:30`)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError("a scenario time is an ISO 8601 date and time, such as 2026-03-11T09:30")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{values.shown(value)} is not an ISO 8601 date and time; write it as 2026-03-11T09:30"
        ) from None
    return value


ScenarioTime = Annotated[str, BeforeValidator(_scenario_time)]


class After(Strict):
    """Delivered after another inject: at the planned gap after it, however late it came."""

    after: Name = Field(description="Id of an earlier timeline step.")


class InjectInfo(Strict):
    """The MSEL's fields of one inject (all optional): what the players receive, from whom, and
    what the controllers and evaluators expect of them."""

    phase: Text | None = Field(None, description="Move or phase of the exercise.")
    type: Literal["event", "information", "contingency"] | None = Field(None, description="Inject type.")
    method: Text | None = Field(None, description="Delivery method (phone call, e-mail, simulated alarm).")
    sender: Text | None = Field(None, alias="from", description="Who the inject comes from (often the SIMCELL).")
    recipient: Text | None = Field(None, alias="to", description="Who receives it.")
    title: Text | None = None
    description: Text | None = None
    expected_actions: Text | None = Field(None, description="What the players are expected to do.")
    objectives: list[ExerciseId] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Objectives and capability targets it supports."
    )
    controller: Text | None = Field(None, description="The responsible controller.")
    evaluator_notes: Text | None = None
    scenario_time: ScenarioTime | None = Field(
        None, description="The fictional clock when it is delivered; default: scenario_start + at."
    )
    extra: dict[Annotated[str, Field(max_length=200)], Text] = Field(
        default_factory=dict,
        max_length=MAX_EXTRA_COLUMNS,
        description="MSEL columns drills does not know, kept for the round trip.",
    )


class Cued(Strict):
    """What makes a timeline step an inject: how it is triggered in play, whether it is a
    decision gate, and its MSEL fields. Every step has these; `at` stays the planned time."""

    trigger: Literal["time", "manual"] | After = Field(
        "time",
        description="`time` (at `at`), `manual` (a controller fires it; a dry run delivers it at `at`), or "
        "`{after: ID}` (the planned gap after that step, however late it came).",
    )
    gate: bool = Field(False, description="Decision gate: the timeline holds when it comes due until a controller releases it.")
    inject: InjectInfo | None = Field(None, description="The MSEL's fields of this inject.")


Role = Literal["player", "controller", "evaluator", "observer", "simcell"]


class Participant(Strict):
    name: Text
    organisation: Text | None = None
    role: Role = "player"


class CapabilityTarget(Strict):
    """A capability target: what an objective needs done, judged by `expect:` figures."""

    id: ExerciseId
    title: Text
    expect: list[Name] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Names of `expect:` objectives that measure it."
    )


class ExerciseObjective(Strict):
    id: ExerciseId
    title: Text
    capability_targets: list[CapabilityTarget] = Field(default_factory=list, max_length=MAX_TARGETS)


class ExerciseSection(Strict):
    """An exercise: who takes part, what it rehearses, and the fictional clock."""

    title: Text | None = Field(None, description="Default: the scenario's name.")
    scenario_start: ScenarioTime | None = Field(None, description="The fictional clock at exercise time T+0.")
    participants: list[Participant] = Field(default_factory=list, max_length=MAX_PARTICIPANTS)
    objectives: list[ExerciseObjective] = Field(default_factory=list, max_length=MAX_OBJECTIVES)
