"""The exercise player (drills.engine.player) on a fake clock: injects delivered when due, held,
fired by hand, skipped, released from a gate, stopped; and the control desk's checks. Pure
logic: the actions are recorded, not applied (the real path: tests/test_control_drill.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drills.clock import FakeClock
from drills.drill_result import StepRecord
from drills.engine.control import ExerciseControl
from drills.engine.player import Player
from drills.engine.timeline import Action, expand
from drills.errors import ScenarioError
from drills.scenario.loader import load_scenario

TOPOLOGY = """
version: 1
name: ex
seed: 1
topology:
  nodes: {a: {}, b: {}}
  links: [{name: l1, endpoints: [a:e0, b:e0]}, {name: l2, endpoints: [a:e1, b:e1]}]
probes: [{name: p, type: udp-stream, from: a, to: b, rate_pps: 10}]
"""


def scenario(tmp_path: Path, timeline: str, extra: str = "", duration: str = "60s") -> Any:
    path = tmp_path / "ex.yaml"
    path.write_text(TOPOLOGY + f"duration: {duration}\n" + extra + "timeline:\n" + timeline)
    return load_scenario(path)


class ScriptedClock(FakeClock):
    """A fake clock that, on reaching a scripted instant, issues a command from another thread
    (as a control page would) and returns from the player's wait so it answers it."""

    def __init__(self, script: list[tuple[float, Callable[[], Any]]]) -> None:
        super().__init__(0.0)
        self.script = sorted(script, key=lambda item: item[0])
        self.answers: list[Any] = []

    def sleep_until(self, instant_s: float, stop: threading.Event | None = None, precise: bool = False) -> bool:
        if self.script and self.script[0][0] <= instant_s and stop is not None:
            at_s, command = self.script.pop(0)
            self.t = max(self.t, at_s)
            worker = threading.Thread(target=lambda: self.answers.append(command()))
            worker.start()
            assert stop.wait(5.0), "the command never reached the desk"
            self._workers = [*getattr(self, "_workers", []), worker]
            return False
        return super().sleep_until(instant_s, stop, precise)

    def join(self) -> None:
        for worker in getattr(self, "_workers", []):
            worker.join(5.0)


def play(sc: Any, clock: FakeClock, control: ExerciseControl | None) -> tuple[Player, list[tuple[str, str, float]]]:
    done: list[tuple[str, str, float]] = []
    in_force: set[str] = set()

    def perform(action: Action, due_s: float) -> StepRecord | None:
        if action.kind == "revert" and action.label not in in_force:
            return None
        (in_force.add if action.kind == "apply" else in_force.discard)(action.label)
        done.append((action.kind, action.label, round(due_s, 3)))
        return StepRecord(action.label, action.kind, action.step.kind, due_s, due_s, due_s, "detail")

    def revert_all(now_s: float) -> None:
        for label in sorted(in_force):
            done.append(("revert", label, round(now_s, 3)))
        in_force.clear()

    player = Player(sc, expand(sc, 1), clock, clock.now_s(), perform, revert_all, control=control)
    player.play()
    if isinstance(clock, ScriptedClock):
        clock.join()
    return player, done


def test_a_dry_run_plays_the_msel_as_planned(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        """
  - {id: cut, at: 10s, fault: link-down, link: l1, for: 5s, trigger: manual, gate: true}
  - {id: news, at: 12s, fault: note, text: "press call", trigger: {after: cut}}
  - {id: cut2, at: 20s, fault: link-down, link: l2}
""",
    )
    player, done = play(sc, FakeClock(0.0), None)
    assert done == [("apply", "cut", 10.0), ("apply", "news", 12.0), ("revert", "cut", 15.0), ("apply", "cut2", 20.0)]
    hows = {i.id: (i.status, i.how) for i in player.injects}
    assert hows == {"cut": ("delivered", "planned"), "news": ("delivered", "after"), "cut2": ("delivered", "time")}
    record = player.record()
    assert record["controlled"] is False and record["held_s"] == 0.0 and record["stop"] is None


def test_a_hold_shifts_what_follows_and_is_recorded(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "  - {id: cut, at: 10s, fault: link-down, link: l1, for: 5s}\n")
    control = ExerciseControl()
    clock = ScriptedClock([(4.0, lambda: control.hold("page")), (7.0, lambda: control.resume("terminal"))])
    player, done = play(sc, clock, control)
    assert done == [("apply", "cut", 13.0), ("revert", "cut", 18.0)]  # 3 s held
    assert [a.ok for a in clock.answers] == [True, True]
    assert player.holds == [{"start_s": 4.0, "end_s": 7.0, "reason": "controller", "source": "page"}]
    assert player.record()["held_s"] == 3.0
    assert player.drill_s() == pytest.approx(63.0)  # the drill's end moved by the hold too


def test_fire_a_manual_inject_and_its_follower(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        """
  - {id: cut, at: 10s, fault: link-down, link: l1, for: 5s, trigger: manual}
  - {id: news, at: 12s, fault: note, text: "press call", trigger: {after: cut}}
""",
    )
    control = ExerciseControl()
    clock = ScriptedClock([(30.0, lambda: control.fire("cut", "page"))])
    player, done = play(sc, clock, control)
    assert done == [("apply", "cut", 30.0), ("apply", "news", 32.0), ("revert", "cut", 35.0)]
    cut = player.injects[0]
    assert (cut.status, cut.how, cut.source, cut.delivered_s, cut.reverted_s) == ("delivered", "fired", "page", 30.0, 35.0)


def test_a_manual_inject_nobody_fires_is_not_delivered(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "  - {id: cut, at: 10s, fault: link-down, link: l1, trigger: manual}\n")
    player, done = play(sc, FakeClock(0.0), ExerciseControl())
    assert done == [] and player.injects[0].status == "not-delivered"


def test_skip_takes_its_followers_and_its_restore_has_nothing_to_revert(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        """
  - {id: cut, at: 10s, fault: link-down, link: l1}
  - {id: news, at: 12s, fault: note, text: "press call", trigger: {after: cut}}
  - {id: mend, at: 20s, restore: cut}
""",
    )
    control = ExerciseControl()
    clock = ScriptedClock([(5.0, lambda: control.skip("cut", "terminal")), (6.0, lambda: control.skip("cut", "page"))])
    player, done = play(sc, clock, control)
    assert done == []
    assert [(i.id, i.status) for i in player.injects] == [("cut", "skipped"), ("news", "skipped"), ("mend", "delivered")]
    assert clock.answers[0].ok and "news" in clock.answers[0].message
    assert not clock.answers[1].ok and "skipped" in clock.answers[1].message


def test_a_gate_holds_until_released(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        """
  - {id: cut, at: 10s, fault: link-down, link: l1, gate: true}
  - {id: cut2, at: 15s, fault: link-down, link: l2}
""",
    )
    control = ExerciseControl()
    clock = ScriptedClock([(12.0, lambda: control.resume("page")), (14.0, lambda: control.release("cut", "page"))])
    player, done = play(sc, clock, control)
    resume, release = clock.answers
    assert not resume.ok and "decision gate" in resume.message
    assert release.ok
    assert done == [("apply", "cut", 14.0), ("apply", "cut2", 19.0)]
    assert player.injects[0].how == "released"
    assert player.holds[0]["reason"] == "gate cut" and player.held_s == pytest.approx(4.0)


def test_the_stop_word_reverts_everything_and_ends_the_drill(tmp_path: Path) -> None:
    sc = scenario(
        tmp_path,
        """
  - {id: cut, at: 10s, fault: link-down, link: l1}
  - {id: cut2, at: 40s, fault: link-down, link: l2}
""",
    )
    control = ExerciseControl()
    clock = ScriptedClock([(20.0, lambda: control.stop("real-world emergency", "page"))])
    player, done = play(sc, clock, control)
    assert done == [("apply", "cut", 10.0), ("revert", "cut", 20.0)]
    assert player.stopped is not None and player.stopped["reason"] == "real-world emergency"
    assert player.injects[1].status == "not-delivered"
    assert player.drill_s() == pytest.approx(23.0)  # the stop's measuring tail
    assert control.state()["phase"] == "over"
    assert not control.hold("page").ok  # after the end: refused, never blocks


def test_observations_and_the_log(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "  - {id: cut, at: 10s, fault: link-down, link: l1}\n")
    control = ExerciseControl()
    clock = ScriptedClock(
        [(11.0, lambda: control.observe("NOC rerouted by hand", "O1", "page")), (12.0, lambda: control.fire("nope", "page"))]
    )
    player, _ = play(sc, clock, control)
    assert player.observations == [{"at_s": 11.0, "exercise_s": 11.0, "text": "NOC rerouted by hand", "objective": "O1", "source": "page"}]
    assert [entry["ok"] for entry in player.actions_log] == [True, False]


def test_the_desk_refuses_bad_commands_without_waiting() -> None:
    control = ExerciseControl()
    assert not control.hold("page").ok  # not started
    assert not control.observe("x\x1b[2J", None, "page").ok
    assert not control.stop("", "page").ok
    assert not control.command("reboot", "", "page").ok
    assert not control.fire("", "page").ok
    assert control.stop("ENDEX", "terminal").ok  # remembered while deploying
    assert control.state()["phase"] == "deploying"


def test_a_stop_while_deploying_ends_the_drill_at_once(tmp_path: Path) -> None:
    sc = scenario(tmp_path, "  - {id: cut, at: 10s, fault: link-down, link: l1}\n")
    control = ExerciseControl()
    control.stop("ENDEX", "terminal")
    player, done = play(sc, FakeClock(0.0), control)
    assert done == [] and player.stopped is not None and player.injects[0].status == "not-delivered"


def test_the_state_is_json(tmp_path: Path) -> None:
    import json

    sc = scenario(
        tmp_path,
        "  - {id: cut, at: 10s, fault: link-down, link: l1, inject: {title: Cable cut, to: NOC, objectives: [O1]}}\n",
        extra="exercise: {scenario_start: '2026-03-11T09:30', objectives: [{id: O1, title: Keep it up}]}\n",
    )
    control = ExerciseControl()
    player, _ = play(sc, FakeClock(0.0), control)
    state = control.state()
    json.dumps(state)
    assert state["injects"][0]["inject"]["title"] == "Cable cut"
    assert state["clock"]["scenario_time"] == "2026-03-11T09:31:00"
    assert player.record()["objectives"][0]["id"] == "O1"


@pytest.mark.parametrize(
    ("timeline", "extra", "message"),
    [
        ("  - {id: n, at: 5s, fault: note, text: x, trigger: {after: later}}\n  - {id: later, at: 9s, fault: note, text: y}\n", "", "earlier step"),
        ("  - {id: a, at: 9s, fault: note, text: x}\n  - {id: n, at: 5s, fault: note, text: y, trigger: {after: a}}\n", "", "planned before it"),
        ("  - {id: n, at: 5s, fault: note, text: x, inject: {objectives: [O9]}}\n", "exercise: {objectives: [{id: O1, title: t}]}\n", "'O9'"),
        ("  - {id: n, at: 5s, fault: note, text: x}\n", "exercise: {objectives: [{id: O1, title: t, capability_targets: [{id: O1.1, title: t, expect: [nope]}]}]}\n", "named 'nope'"),
        ("  - {id: n, at: 5s, fault: note, text: x}\n", "exercise: {scenario_start: 'next tuesday'}\n", "ISO 8601"),
        ("  - {id: n, at: 5s, fault: note, text: x, trigger: sometimes}\n", "", "trigger"),
        ("  - {id: n, at: 5s, fault: note, text: x}\n  - {id: n, at: 6s, restore: n}\n", "", "used twice"),
    ],
)
def test_exercise_references_are_checked(tmp_path: Path, timeline: str, extra: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario(tmp_path, timeline, extra)
    assert message in str(caught.value)


def test_the_last_state_survives_the_drills_own_finish(tmp_path: Path) -> None:
    """run_drill finishes the desk again on its way out (also on errors): the final state stays."""
    sc = scenario(tmp_path, "  - {id: cut, at: 10s, fault: link-down, link: l1}\n")
    control = ExerciseControl()
    play(sc, FakeClock(0.0), control)
    control.finish(None)
    state = control.state()
    assert state["phase"] == "over" and state["injects"][0]["status"] == "delivered"
