"""The timeline played as an exercise: injects delivered when due, held, fired by hand, skipped,
released from a decision gate, or everything stopped by the stop word.

Two clocks: the drill clock (seconds from its zero, never paused: the probes' and the figures'
time) and the exercise clock (the MSEL's T+), which stands still while the timeline is held.
Every action of the timeline (drills.engine.timeline) belongs to one inject (the step that
caused it) and is due at the inject's delivery + its offset from the inject's planned time,
in exercise time: a hold delays everything after it, a `for:` counts from the delivery.

Without a controller (a dry run, CI) the MSEL plays as planned: manual injects are delivered
at their planned time and gates pass. The player runs on the drill clock's thread; commands
reach it through `ExerciseControl` and are answered between actions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drills.clock import Clock
from drills.drill_result import StepRecord
from drills.engine.control import Command, ExerciseControl
from drills.engine.timeline import Action
from drills.scenario.exercise import TRIGGER_AFTER, TRIGGER_MANUAL, Cue, Exercise
from drills.scenario.resolved import Scenario

MAX_LOG = 200  # controller actions kept in the state (all are in results)
MAX_OBSERVATIONS = 1000
STOP_TAIL_S = 3.0  # after the stop word: faults reverted at once, the probes measure this long more
# However long it is held, a drill ends: its duration (exercise time) × 4 + 1 h of drill time.
HOLD_BOUND_FACTOR, HOLD_BOUND_EXTRA_S = 4.0, 3600.0
WAIT_SLICE_S = 1.0  # a held timeline looks at its deadline this often

Perform = Callable[[Action, float], StepRecord | None]  # (action, due drill s) -> its record; None: nothing done
RevertAll = Callable[[float], None]  # revert every fault in force now (stamped at drill s)


@dataclass
class Inject:
    """One timeline step as the MSEL plays it."""

    index: int
    id: str
    planned_s: float  # exercise time, as planned
    cue: Cue
    fault: str
    detail: str
    after_id: str | None = None
    status: str = "pending"  # pending | gated | delivered | skipped | not-delivered
    due_s: float | None = None  # exercise time it is due (None: waits for a fire or another inject)
    delivered_s: float | None = None  # drill time
    delivered_exercise_s: float | None = None
    how: str | None = None  # time | planned | fired | after | released
    source: str | None = None
    reverted_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "index": self.index,
            "planned_s": self.planned_s,
            "due_s": self.due_s,
            "trigger": self.cue.trigger,
            "after": self.after_id,
            "gate": self.cue.gate,
            "status": self.status,
            "delivered_s": self.delivered_s,
            "delivered_exercise_s": self.delivered_exercise_s,
            "how": self.how,
            "source": self.source,
            "reverted_s": self.reverted_s,
            "fault": self.fault,
            "detail": self.detail,
            "inject": self.cue.to_json(),
        }


class Player:
    """Plays `actions` (drills.engine.timeline.expand) from drill clock zero `t0`."""

    def __init__(
        self,
        scenario: Scenario,
        actions: list[Action],
        clock: Clock,
        t0: float,
        perform: Perform,
        revert_all: RevertAll,
        *,
        control: ExerciseControl | None = None,
        describe: Callable[[Action], str] = lambda a: a.step.kind,
        probes: Callable[[], list[dict[str, Any]]] = list,
        lead_s: float = 0.0,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.scenario, self.clock, self.t0 = scenario, clock, t0
        self.perform, self.revert_all, self.control = perform, revert_all, control
        self.probes, self.lead_s, self.log = probes, lead_s, log
        self.duration_s = scenario.duration_s
        self.deadline_s = t0 + scenario.duration_s * HOLD_BOUND_FACTOR + HOLD_BOUND_EXTRA_S
        self.exercise: Exercise | None = scenario.exercise
        self.started_at = datetime.now(UTC) - timedelta(seconds=max(0.0, clock.now_s() - t0))  # wall clock at drill time 0
        self.injects: list[Inject] = []
        self._actions: dict[int, list[Action]] = {}  # per inject: its actions
        for action in actions:
            self._actions.setdefault(action.inject, []).append(action)
        names = {step.index: step.name for step in scenario.steps}
        for step in scenario.steps:
            cue = scenario.cue(step.index)
            mine = self._actions.get(step.index, [])
            detail = describe(mine[0]) if mine else step.kind
            inject = Inject(step.index, step.name, step.timing.at_s, cue, step.kind, detail)
            inject.after_id = names.get(cue.after) if cue.after is not None else None
            self.injects.append(inject)
        self._by_id = {i.id: i for i in self.injects}
        self._followers: dict[int, list[Inject]] = {}  # per step index: the injects `after` it
        for inject in self.injects:
            if inject.cue.after is not None:
                self._followers.setdefault(inject.cue.after, []).append(inject)
        # Pending injects by when they are due (exercise s, step index); an entry whose inject
        # was delivered, skipped or given another time since is dropped when it comes up.
        self._due: list[tuple[float, int]] = []
        for inject in self.injects:
            waits = inject.cue.trigger == TRIGGER_AFTER or (inject.cue.trigger == TRIGGER_MANUAL and control is not None)
            if not waits:
                self._set_due(inject, inject.planned_s)
        self._queue: list[tuple[float, int, int, Action]] = []  # (exercise s, order, inject, action)
        self._order = 0
        self.in_force: dict[str, dict[str, Any]] = {}
        self.held_s = 0.0  # holds that ended
        self.hold: dict[str, Any] | None = None  # the hold now: since (drill s), reason, source
        self.holds: list[dict[str, Any]] = []
        self.observations: list[dict[str, Any]] = []
        self.actions_log: list[dict[str, Any]] = []
        self.stopped: dict[str, Any] | None = None

    # ------------------------------------------------------------------ clocks

    def drill_s(self) -> float:
        return self.clock.now_s() - self.t0

    def held_total_s(self, drill_s: float) -> float:
        return self.held_s + (drill_s - float(self.hold["start_s"]) if self.hold is not None else 0.0)

    def exercise_s(self, drill_s: float) -> float:
        return drill_s - self.held_total_s(drill_s)

    # ------------------------------------------------------------------ the loop

    def play(self) -> float:
        """Play the timeline to its end (or the stop word); the drill seconds it lasted."""
        if self.control is not None:
            early = self.control.start(self)
            if early is not None:
                self._stop(early)
        while self.stopped is None:
            self._commands()
            if self.stopped is not None:
                break
            now_s = self.drill_s()
            if self.t0 + now_s >= self.deadline_s:
                self.log(f"the timeline was held past its bound ({self.deadline_s - self.t0:g} s of drill time): the drill ends")
                break
            nxt = None if self.hold is not None else self._next()
            if self.hold is not None:
                target_s = min(self.deadline_s, self.t0 + now_s + WAIT_SLICE_S)
            else:
                due_ex = min(nxt[0] if nxt is not None else math.inf, self.duration_s)
                lead = self.lead_s if nxt is not None and nxt[0] <= self.duration_s else 0.0
                target_s = min(self.deadline_s, self.t0 + due_ex + self.held_s - lead)
            wake = self.control.wake if self.control is not None else None
            if not self.clock.sleep_until(target_s, stop=wake, precise=nxt is not None):
                continue  # a command came: answer it first
            if self.hold is not None:
                continue
            if nxt is None or nxt[0] > self.duration_s:
                if self.clock.now_s() >= self.t0 + self.duration_s + self.held_s - 1e-9:
                    break  # the drill's end, in exercise time
                continue
            self._do(nxt)
        self._finish_hold()
        if self.stopped is not None:
            self.clock.sleep_until(self.clock.now_s() + STOP_TAIL_S)
        for inject in self.injects:
            if inject.status in ("pending", "gated"):
                inject.status = "not-delivered"
        if self.control is not None:
            self.control.finish(self.view())
        return self.drill_s()

    def _next(self) -> tuple[float, str, Any] | None:
        """The earliest thing due, in exercise time: a queued action, or an inject's delivery
        (deliveries first at equal times, so an inject's own actions follow it)."""
        while self._due:
            due_s, index = self._due[0]
            inject = self.injects[index]
            if inject.status == "pending" and inject.due_s == due_s:
                break
            heapq.heappop(self._due)  # delivered, skipped or rescheduled since
        if self._due and (not self._queue or self._due[0][0] <= self._queue[0][0]):
            due_s, index = self._due[0]  # ties between injects: the earlier step
            return (due_s, "deliver", self.injects[index])
        return (self._queue[0][0], "action", None) if self._queue else None

    def _set_due(self, inject: Inject, due_s: float) -> None:
        inject.due_s = due_s
        heapq.heappush(self._due, (due_s, inject.index))

    def _do(self, nxt: tuple[float, str, Any]) -> None:
        due_ex, what, inject = nxt
        if what == "deliver":
            if inject.cue.gate and self.control is not None:
                inject.status = "gated"
                self._start_hold(f"gate {inject.id}", "gate", self.t0 + due_ex + self.held_s)
                self.log(f"T+{due_ex:06.2f} decision gate {inject.id}: the timeline holds until a controller releases it")
                return
            how = {"manual": "planned", "after": "after"}.get(inject.cue.trigger, "time")
            self._deliver(inject, due_ex, how, None)
            return
        _, _, _, action = heapq.heappop(self._queue)
        self._perform(action, due_ex)

    def _deliver(self, inject: Inject, at_ex: float, how: str, source: str | None) -> None:
        """Deliver `inject` at exercise time `at_ex`: its actions are queued at their offsets."""
        drill_at = at_ex + self.held_total_s(self.drill_s())
        inject.status, inject.how, inject.source = "delivered", how, source
        inject.delivered_s, inject.delivered_exercise_s = drill_at, at_ex
        for action in self._actions.get(inject.index, []):
            heapq.heappush(self._queue, (at_ex + action.at_s - inject.planned_s, self._order, inject.index, action))
            self._order += 1
        for other in self._followers.get(inject.index, ()):  # due at the planned gap after it
            if other.status == "pending":
                self._set_due(other, at_ex + other.planned_s - inject.planned_s)
        self._changed()

    def _perform(self, action: Action, due_ex: float) -> None:
        due_drill = due_ex + self.held_total_s(self.drill_s())
        step = self.perform(action, due_drill)
        if step is None:
            return
        if action.kind == "apply":
            self.in_force[action.label] = {"id": action.label, "fault": action.step.kind, "detail": step.detail, "since_s": round(step.confirmed_s, 3)}
        else:
            self.in_force.pop(action.label, None)
            self.injects[action.step_index].reverted_s = round(step.confirmed_s, 3)
        self._changed()

    # ------------------------------------------------------------------ commands

    def _commands(self) -> None:
        if self.control is None:
            return
        for command in self.control.take():
            if self.stopped is not None:
                command.reply(False, "the exercise was stopped")
                continue
            try:
                ok, message = getattr(self, f"_cmd_{command.name}")(command)
            except KeyError:
                ok, message = False, "no such inject"
            now_s = self.drill_s()
            self.actions_log.append(
                {"at_s": round(now_s, 3), "source": command.source, "command": command.name, "argument": command.argument[:200], "ok": ok, "message": message}
            )
            command.reply(ok, message)
            self._changed()

    def _inject(self, command: Command) -> Inject:
        inject = self._by_id.get(command.argument)
        if inject is None:
            raise KeyError(command.argument)
        return inject

    def _cmd_hold(self, command: Command) -> tuple[bool, str]:
        if self.hold is not None:
            return False, f"the timeline is held already ({self.hold['reason']})"
        self._start_hold("controller", command.source, self.clock.now_s())
        return True, f"held at T+{_hms(self.exercise_s(self.drill_s()))}; probes keep measuring"

    def _cmd_resume(self, command: Command) -> tuple[bool, str]:
        if self.hold is None:
            return False, "the timeline is not held"
        if self.hold["reason"].startswith("gate "):
            gate = self.hold["reason"][5:]
            return False, f"inject {gate} waits at its decision gate: release it (or skip it)"
        held = self._finish_hold()
        return True, f"resumed after {held:.1f} s held"

    def _cmd_fire(self, command: Command) -> tuple[bool, str]:
        inject = self._inject(command)
        if inject.status == "gated":
            return self._cmd_release(command)
        if inject.status != "pending":
            return False, f"inject {inject.id} is {inject.status}; only a pending inject can be fired"
        return self._deliver_now(inject, "fired", command.source)

    def _cmd_release(self, command: Command) -> tuple[bool, str]:
        inject = self._inject(command)
        if inject.status != "gated":
            return False, f"inject {inject.id} is not waiting at a decision gate ({inject.status})"
        self._finish_hold()
        return self._deliver_now(inject, "released", command.source)

    def _deliver_now(self, inject: Inject, how: str, source: str) -> tuple[bool, str]:
        """Deliver `inject` at this instant and perform at once what that makes due (its first apply)."""
        now_ex = self.exercise_s(self.drill_s())
        self._deliver(inject, now_ex, how, source)
        while self._queue and self._queue[0][0] <= now_ex + 1e-9:
            due_ex, _, _, action = heapq.heappop(self._queue)
            self._perform(action, due_ex)
        return True, f"{how} {inject.id} at T+{_hms(now_ex)}"

    def _cmd_skip(self, command: Command) -> tuple[bool, str]:
        inject = self._inject(command)
        if inject.status not in ("pending", "gated"):
            return False, f"inject {inject.id} is {inject.status}; only a pending inject can be skipped"
        if inject.status == "gated":
            self._finish_hold()
        skipped = self._skip(inject, command.source)
        also = f" (and {', '.join(skipped)}, which follow it)" if skipped else ""
        return True, f"skipped {inject.id}{also}"

    def _skip(self, inject: Inject, source: str) -> list[str]:
        inject.status, inject.source = "skipped", source
        followers = []
        for other in self._followers.get(inject.index, ()):
            if other.status == "pending":
                followers.append(other.id)
                followers += self._skip(other, source)
        return followers

    def _cmd_observe(self, command: Command) -> tuple[bool, str]:
        if len(self.observations) >= MAX_OBSERVATIONS:
            return False, f"{MAX_OBSERVATIONS} observations are recorded already"
        now_s = self.drill_s()
        self.observations.append(
            {"at_s": round(now_s, 3), "exercise_s": round(self.exercise_s(now_s), 3), "text": command.argument, "objective": command.objective, "source": command.source}
        )
        return True, "observation recorded"

    def _cmd_stop(self, command: Command) -> tuple[bool, str]:
        self._stop(command)
        return True, f"stopped: {command.argument}; every fault reverted"

    def _stop(self, command: Command) -> None:
        now_s = self.drill_s()
        self._finish_hold()
        self.stopped = {"at_s": round(now_s, 3), "exercise_s": round(self.exercise_s(now_s), 3), "reason": command.argument, "source": command.source}
        self.log(f"STOP ({command.argument}) from {command.source}: every fault is reverted now")
        self._queue.clear()
        self.revert_all(now_s)
        for label in list(self.in_force):
            self.in_force.pop(label)
        self._changed()

    def _start_hold(self, reason: str, source: str, at_clock_s: float) -> None:
        self.hold = {"start_s": at_clock_s - self.t0, "reason": reason, "source": source}
        self.log(f"HOLD ({reason}, {source}) at T+{_hms(self.exercise_s(self.drill_s()))}")
        if self.control is not None:
            self.control.changed("held")

    def _finish_hold(self) -> float:
        if self.hold is None:
            return 0.0
        end_s = self.drill_s()
        held = max(0.0, end_s - float(self.hold["start_s"]))
        self.holds.append({**self.hold, "end_s": round(end_s, 3), "start_s": round(self.hold["start_s"], 3)})
        self.held_s += held
        self.hold = None
        if self.control is not None:
            self.control.changed("running")
        return held

    def _changed(self) -> None:
        if self.control is not None:
            self.control.changed()

    # ------------------------------------------------------------------ what it shows

    def view(self) -> dict[str, Any]:
        """The state (README "Exercise control"), built on the caller's thread."""
        now_s = self.drill_s()
        exercise_s = self.exercise_s(now_s)
        title = self.exercise.title if self.exercise else self.scenario.name
        hold = self.hold
        return {
            "phase": "over" if self.stopped else ("held" if hold is not None else "running"),
            "scenario": self.scenario.name,
            "title": title,
            "objectives": self.exercise.to_json()["objectives"] if self.exercise else [],
            "clock": {
                "drill_s": round(now_s, 3),
                "exercise_s": round(exercise_s, 3),
                "held_s": round(self.held_total_s(now_s), 3),
                "scenario_time": self.exercise.scenario_time(exercise_s) if self.exercise else None,
                "duration_s": self.duration_s,
                "started_at": _iso(self.started_at),
            },
            "hold": None if hold is None else {"since_s": round(hold["start_s"], 3), "reason": hold["reason"], "source": hold["source"]},
            "injects": [i.to_json() for i in list(self.injects)],
            "in_force": list(self.in_force.values()),
            "probes": self.probes(),
            "holds": list(self.holds),
            "observations": list(self.observations),
            "stop": self.stopped,
            "log": list(self.actions_log[-MAX_LOG:]),
        }

    def record(self) -> dict[str, Any]:
        """results.json's `exercise` section."""
        exercise = self.exercise.to_json() if self.exercise else {"title": self.scenario.name, "scenario_start": None, "participants": [], "objectives": []}
        return {
            **exercise,
            "controlled": self.control is not None,
            "started_at": _iso(self.started_at),
            "injects": [i.to_json() for i in self.injects],
            "holds": list(self.holds),
            "held_s": round(self.held_s, 3),
            "observations": list(self.observations),
            "stop": self.stopped,
            "log": list(self.actions_log),
        }


def _hms(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:04.1f}"


def _iso(when: datetime) -> str:
    return (when - timedelta(microseconds=when.microsecond)).isoformat().replace("+00:00", "Z")
