"""Exercise control on the real path: a drill on real namespaces played through ExerciseControl
from another thread, as the control page and socket do: a hold (the probes keep measuring), a
manual inject fired and its link seen down in the kernel, the stop word with every fault
reverted (seen in the kernel), and the MSEL as played in results.json.

No timed assertion: what is checked is order and state (delivered, held, reverted), and the
instants the player recorded against each other, never against a wall-clock bound."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from drills import results
from drills.clock import SystemClock
from drills.engine.control import ExerciseControl
from drills.lifecycle import run as run_drill

pytestmark = pytest.mark.netns

EXERCISE = """
version: 1
name: ctl
seed: 3
exercise:
  title: Control drill
  scenario_start: "2026-03-11T09:30"
  objectives: [{id: O1, title: Keep the stream, capability_targets: [{id: O1.1, title: Back fast, expect: [back]}]}]
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1, metric: 10}, {to: b, via: b:e2, metric: 100}]}
    b: {routes: [{to: a, via: a:e1, metric: 10}, {to: a, via: a:e2, metric: 100}]}
  links: [{name: main, endpoints: [a:e1, b:e1]}, {name: spare, endpoints: [a:e2, b:e2]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}
timeline:
  - {id: brief, at: 1s, fault: note, text: "STARTEX", inject: {title: Start of exercise, to: all}}
  - {id: cut, at: 4s, fault: link-down, link: main, trigger: manual, inject: {title: Cable cut, objectives: [O1.1]}}
  - {id: spare-cut, at: 30s, fault: link-down, link: spare}
expect:
  - {name: back, probe: stream, step: cut, max_outage: 2s}
duration: 40s
"""


def _ip_up(namespace: str, ifname: str) -> bool:
    import subprocess

    out = subprocess.run(["ip", "-n", namespace, "-o", "link", "show", ifname], check=True, capture_output=True, text=True).stdout
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
    return "UP" in flags


def wait_for(control: ExerciseControl, check: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    clock = SystemClock()
    deadline_s = clock.now_s() + timeout_s
    while clock.now_s() < deadline_s:
        state = control.state()
        if check(state):
            return state
        control.wait_change(state["version"], 0.5)  # a change, or half a second: the clocks move
    raise AssertionError(f"never reached: {control.state()}")


def control_the(control: ExerciseControl, attached: list[Path]) -> None:
    state = wait_for(control, lambda s: s["phase"] == "running" and s["clock"]["exercise_s"] > 1.5)
    assert state["injects"][0]["status"] == "delivered"
    namespaces = json.loads((attached[0] / "meta.json").read_text())["nodes"]

    assert control.hold("test").ok
    held = wait_for(control, lambda s: s["phase"] == "held")
    assert not control.hold("test").ok  # held already: refused with a reason
    wait_for(control, lambda s: s["clock"]["drill_s"] > held["clock"]["drill_s"] + 1.0)
    assert control.resume("test").ok

    assert _ip_up(namespaces["a"], "e1")
    fired = control.fire("cut", "test")
    assert fired.ok, fired.message
    assert not _ip_up(namespaces["a"], "e1") and not _ip_up(namespaces["b"], "e1")  # in the kernel, now
    assert not control.fire("cut", "test").ok  # delivered already
    assert control.observe("NOC saw the alarm", "O1.1", "test").ok

    stop = control.stop("real-world emergency", "test")
    assert stop.ok, stop.message
    assert _ip_up(namespaces["a"], "e1") and _ip_up(namespaces["b"], "e1")  # every fault reverted at once


def test_hold_fire_and_the_stop_word_on_real_namespaces(tmp_path: Path, state_dir: Path, host_snapshot: object) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text(EXERCISE)
    control = ExerciseControl()
    attached: list[Path] = []
    control.on_attach(attached.append)
    outcome: dict[str, Any] = {}

    def command() -> None:  # the controller, on its own thread (the drill owns the main one: signals)
        try:
            control_the(control, attached)
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc
            control.stop("the test failed", "test")

    commander = threading.Thread(target=command)
    commander.start()
    try:
        result = run_drill(path, state_dir, log=lambda _m: None, control=control)
    finally:
        commander.join(120)
    assert "error" not in outcome, outcome.get("error")
    exercise = result.exercise
    injects = {i["id"]: i for i in exercise["injects"]}
    assert injects["cut"]["how"] == "fired" and injects["cut"]["source"] == "test"
    assert injects["spare-cut"]["status"] == "not-delivered"
    assert exercise["stop"]["reason"] == "real-world emergency"
    assert len(exercise["holds"]) == 1 and exercise["held_s"] > 1.0
    assert exercise["observations"][0]["objective"] == "O1.1"
    # The cut was stamped as an apply, the stop word's revert as a revert after it.
    cut = [s for s in result.steps if s.label == "cut"]
    assert [s.kind for s in cut] == ["apply", "revert"] and cut[0].confirmed_s <= cut[1].issued_s
    assert result.duration_s < 40.0  # the stop ended it (with its measuring tail)
    out = tmp_path / "out"
    results.write(result, out, path)
    written = json.loads((out / "results.json").read_text())
    import jsonschema

    jsonschema.Draft202012Validator(results.results_schema()).validate(written)
    assert written["exercise"]["stop"]["source"] == "test"
