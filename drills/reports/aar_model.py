"""The exercise as results.json recorded it (its `exercise` section and its `verdicts`), read into
typed records for the after-action report (drills.reports.aar).

results.json is drills' own file, but it is passed around and may be edited by hand: every
value is checked for its type (a wrong one is a BadInput naming the key path, never a
traceback), every text is cut at MAX_TEXT_CHARS and every list at MAX_ITEMS. Text stays raw
here: each renderer escapes it for its format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from drills.errors import BadInput

MAX_TEXT_CHARS = 8192  # an observation is at most 4096 bytes; a description rarely a page
MAX_ITEMS = 10_000  # injects, holds, observations, log lines, verdicts: an exercise has dozens


@dataclass(frozen=True)
class Participant:
    name: str
    organisation: str
    role: str


@dataclass(frozen=True)
class Target:
    """A capability target: its measured figures are the verdicts of its `expect` names."""

    id: str
    title: str
    expect: tuple[str, ...]
    objective: str  # the id of the objective it belongs to


@dataclass(frozen=True)
class ExerciseObjective:
    id: str
    title: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Inject:
    """One MSEL line as played. Instants are drill seconds (holds included) but `planned_s`,
    the MSEL's T+ (exercise time)."""

    id: str
    planned_s: float
    due_s: float | None
    trigger: str
    after: str | None
    gate: bool
    status: str
    delivered_s: float | None
    delivered_exercise_s: float | None  # None in results written before it was recorded
    how: str | None
    source: str | None
    reverted_s: float | None
    fault: str
    detail: str
    title: str
    phase: str
    objectives: tuple[str, ...]
    scenario_time: str | None


@dataclass(frozen=True)
class Hold:
    start_s: float  # drill seconds
    end_s: float | None  # None: still held when the drill ended
    reason: str
    source: str


@dataclass(frozen=True)
class Observation:
    at_s: float
    exercise_s: float
    text: str
    objective: str | None
    source: str


@dataclass(frozen=True)
class Stop:
    at_s: float  # drill seconds
    exercise_s: float | None
    reason: str
    source: str


@dataclass(frozen=True)
class LogLine:
    at_s: float
    source: str
    command: str  # hold, resume, fire, skip, release, observe, stop
    argument: str  # the inject id, the observation, the stop's reason ("" for hold/resume)
    ok: bool
    message: str


@dataclass(frozen=True)
class Figure:
    """A verdict of results.json; the numbers are None when the file predates them."""

    objective: str
    probe: str
    event: str
    measured: str
    bound: str
    passed: bool | None
    value: float | None = None
    accuracy: float = 0.0
    limit: float | None = None
    unit: str = ""
    at_least: bool = False
    numbers: bool = False  # value/limit were recorded (or read back from the texts)


@dataclass(frozen=True)
class Exercise:
    title: str
    scenario: str
    run_id: str
    scenario_start: str | None
    controlled: bool
    started_at: str | None
    duration_s: float
    held_s: float
    outcome: str
    participants: tuple[Participant, ...]
    objectives: tuple[ExerciseObjective, ...]
    injects: tuple[Inject, ...]
    holds: tuple[Hold, ...]
    observations: tuple[Observation, ...]
    stop: Stop | None
    log: tuple[LogLine, ...]
    figures: tuple[Figure, ...] = field(default=())

    def targets(self) -> list[Target]:
        return [t for o in self.objectives for t in o.targets]


class _Reader:
    """Typed access to one JSON object, naming its key path in every complaint."""

    def __init__(self, data: object, path: str, file: str) -> None:
        if not isinstance(data, dict):
            raise BadInput(f"{file}: {path} is {type(data).__name__}, expected an object; {_FIX}")
        self.data: dict[str, Any] = data
        self.path = path
        self.file = file

    def _bad(self, key: str, want: str) -> BadInput:
        got = type(self.data.get(key)).__name__
        return BadInput(f"{self.file}: {self.path}.{key} is {got}, expected {want}; {_FIX}")

    def text(self, key: str, default: str | None = "") -> str:
        value = self.data.get(key, default)
        if value is None and default is not None:
            value = default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value if len(value) <= MAX_TEXT_CHARS else value[:MAX_TEXT_CHARS] + " … (cut)"

    def maybe_text(self, key: str) -> str | None:
        return None if self.data.get(key) is None else self.text(key)

    def number(self, key: str, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        return float(value)

    def maybe_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.number(key)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def items(self, key: str) -> list[_Reader]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return [_Reader(item, f"{self.path}.{key}[{i}]", self.file) for i, item in enumerate(value[:MAX_ITEMS])]

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(v[:MAX_TEXT_CHARS] for v in value[:MAX_ITEMS])

    def child(self, key: str) -> _Reader | None:
        value = self.data.get(key)
        return None if value is None else _Reader(value, f"{self.path}.{key}", self.file)


_FIX = "give the directory `drill run --out` wrote, unchanged"


def read_exercise(results: dict[str, Any], file: str = "results.json") -> Exercise:
    """The exercise of a results document; BadInput naming the key when a value is not as drills
    writes it. A results.json from before exercises (no `exercise` section) is refused."""
    top = _Reader(results, "results", file)
    if results.get("exercise") is None:
        raise BadInput(
            f"{file} has no `exercise` section: it was written by a drills without exercises; run the drill "
            "again with this drills to get an after-action report"
        )
    ex = _Reader(results["exercise"], "exercise", file)
    scenario = top.child("scenario")
    scenario_name = scenario.text("name") if scenario is not None else ""
    objectives = []
    for o in ex.items("objectives"):
        oid = o.text("id")
        targets = tuple(Target(t.text("id"), t.text("title"), t.texts("expect"), oid) for t in o.items("capability_targets"))
        objectives.append(ExerciseObjective(oid, o.text("title"), targets))
    stop = ex.child("stop")
    return Exercise(
        title=ex.text("title", scenario_name) or scenario_name,
        scenario=scenario_name,
        run_id=top.text("run_id"),
        scenario_start=ex.maybe_text("scenario_start"),
        controlled=ex.flag("controlled"),
        started_at=ex.maybe_text("started_at"),
        duration_s=top.number("duration_s", 0.0),
        held_s=ex.number("held_s", 0.0),
        outcome=top.text("outcome", "?"),
        participants=tuple(
            Participant(p.text("name"), p.text("organisation"), p.text("role", "player") or "player")
            for p in ex.items("participants")
        ),
        objectives=tuple(objectives),
        injects=tuple(_inject(i) for i in ex.items("injects")),
        holds=tuple(
            Hold(h.number("start_s"), h.maybe_number("end_s"), h.text("reason"), h.text("source")) for h in ex.items("holds")
        ),
        observations=tuple(
            Observation(o.number("at_s"), o.number("exercise_s", o.number("at_s")), o.text("text"), o.maybe_text("objective"), o.text("source"))
            for o in ex.items("observations")
        ),
        stop=None if stop is None else Stop(stop.number("at_s"), stop.maybe_number("exercise_s"), stop.text("reason"), stop.text("source")),
        log=tuple(
            LogLine(g.number("at_s"), g.text("source"), g.text("command"), g.text("argument"), g.flag("ok"), g.text("message"))
            for g in ex.items("log")
        ),
        figures=tuple(_figure(v) for v in top.items("verdicts")),
    )  # fmt: skip


def _inject(i: _Reader) -> Inject:
    fields = i.child("inject")
    return Inject(
        id=i.text("id"),
        planned_s=i.number("planned_s"),
        due_s=i.maybe_number("due_s"),
        trigger=i.text("trigger", "time"),
        after=i.maybe_text("after"),
        gate=i.flag("gate"),
        status=i.text("status", "pending"),
        delivered_s=i.maybe_number("delivered_s"),
        delivered_exercise_s=i.maybe_number("delivered_exercise_s"),
        how=i.maybe_text("how"),
        source=i.maybe_text("source"),
        reverted_s=i.maybe_number("reverted_s"),
        fault=i.text("fault"),
        detail=i.text("detail"),
        title=fields.text("title") if fields is not None else "",
        phase=fields.text("phase") if fields is not None else "",
        objectives=fields.texts("objectives") if fields is not None else (),
        scenario_time=fields.maybe_text("scenario_time") if fields is not None else None,
    )


# Verdicts written before the numbers were recorded: their texts, as objectives.py writes them.
_MEASURED = re.compile(r"^(-?\d+(?:\.\d+)?) (ms|s|%)(?: ± (\d+(?:\.\d+)?) (ms|s))?")
_BOUND = re.compile(r"^(<=|>=) (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?) (ms|s|%)$")
_SCALE = {"ms": 1e-3, "s": 1.0, "%": 1.0}


def _figure(v: _Reader) -> Figure:
    passed = None if v.data.get("passed") is None else v.flag("passed")
    head = (v.text("objective"), v.text("probe"), v.text("event"), v.text("measured"), v.text("bound"), passed)
    if v.data.get("limit") is not None:
        return Figure(
            *head,
            value=v.maybe_number("value"),
            accuracy=v.number("accuracy", 0.0),
            limit=v.number("limit"),
            unit=v.text("unit"),
            at_least=v.flag("at_least"),
            numbers=True,
        )
    measured, bound = _MEASURED.match(head[3]), _BOUND.match(head[4])
    if measured is None or bound is None:
        return Figure(*head)
    scale = _SCALE[measured.group(2)]
    accuracy = float(measured.group(3)) * _SCALE[measured.group(4)] if measured.group(3) else 0.0
    return Figure(
        *head,
        value=float(measured.group(1)) * scale,
        accuracy=accuracy,
        limit=float(bound.group(2)) * _SCALE[bound.group(3)],
        unit="%" if bound.group(3) == "%" else "s",
        at_least=bound.group(1) == ">=",
        numbers=True,
    )
