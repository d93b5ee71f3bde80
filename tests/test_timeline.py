"""Timeline expansion and objectives, on parsed scenarios (no kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.backend import NETEM, TBF
from drills.clock import FakeClock
from drills.engine.drill import preflight
from drills.engine.timeline import expand
from drills.errors import ScenarioError
from drills.measure import EventMetrics
from drills.objectives import evaluate
from drills.scenario import load_scenario
from drills.scenario.expect import Objective

SCENARIO = """
version: 1
name: t
topology:
  nodes: {a: {}, b: {}}
  links: [{name: l, endpoints: [a:e1, b:e1]}]
probes:
  - {name: s, type: udp-stream, from: a, to: b}
timeline:
  - {at: 1s, fault: note, text: hello}
  - {id: cut, at: 2s, fault: link-down, link: l, for: 3s}
  - {id: flap, at: 10s, fault: link-down, link: a:e1, for: 1s, repeat: {every: 5s, count: 3}}
  - {id: hold, at: 30s, fault: link-down, link: l}
  - {at: 32s, restore: hold}
expect:
  - {probe: s, step: cut, max_outage: 50ms}
"""


def _load(tmp_path: Path, text: str = SCENARIO) -> object:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_scenario(path)


def test_expand_orders_applies_reverts_repeats_and_restores(tmp_path: Path) -> None:
    scenario = _load(tmp_path)
    actions = [(a.at_s, a.kind, a.label) for a in expand(scenario)]  # type: ignore[arg-type]
    assert actions == [
        (1.0, "apply", "step0"),
        (2.0, "apply", "cut"),
        (5.0, "revert", "cut"),
        (10.0, "apply", "flap"),
        (11.0, "revert", "flap"),
        (15.0, "apply", "flap#1"),
        (16.0, "revert", "flap#1"),
        (20.0, "apply", "flap#2"),
        (21.0, "revert", "flap#2"),
        (30.0, "apply", "hold"),
        (32.0, "revert", "hold"),
    ]


def test_preflight_refuses_what_run_cannot_do_yet(tmp_path: Path) -> None:
    text = SCENARIO.replace(
        # A ramp from 0 with jitter: netem cannot jitter a zero delay (ramps themselves now run).
        "fault: note, text: hello", "fault: degrade, link: l, jitter: 5ms, ramp: {from: 0ms, to: 600ms, over: 1s}"
    )
    with pytest.raises(ScenarioError, match=r"timeline\[0\]"):
        preflight(_load(tmp_path, text), lambda: {NETEM: True, TBF: True})  # type: ignore[arg-type]


def test_fake_clock_jumps() -> None:
    clock = FakeClock(10.0)
    assert clock.sleep_until(12.5)
    assert clock.now_s() == 12.5


def _metrics(outage_s: float, recover_s: float | None) -> EventMetrics:
    return EventMetrics("s", "cut", "apply", 1000, int(outage_s * 1000), outage_s, outage_s, 0.0, recover_s, 0.001)


def test_objective_counts_the_accuracy_against_the_result() -> None:
    objective = Objective("expect[0]", probe="s", step="cut", max_outage_s=0.050)
    labels = {"cut": "cut"}
    assert evaluate([objective], [_metrics(0.048, 0.05)], labels)[0].passed is True
    assert evaluate([objective], [_metrics(0.0495, 0.05)], labels)[0].passed is False


def test_template_and_never_recovered() -> None:
    objective = Objective("carrier-grade", template="carrier-grade")
    verdict = evaluate([objective], [_metrics(0.2, None)], {"cut": "cut"})[0]
    assert verdict.passed is False
    recovery = evaluate([Objective("expect[0]", max_recovery_s=1.0)], [_metrics(0.2, None)], {})[0]
    assert recovery.measured == "never recovered"
    assert recovery.passed is False


FLAP = SCENARIO.replace(
    "  - {id: hold, at: 30s, fault: link-down, link: l}\n  - {at: 32s, restore: hold}\n",
    "  - {id: wobble, at: 40s, fault: link-flap, link: l, period: 2s, duty: 25%, count: 3, jitter: 300ms}\n",
)


def test_link_flap_expands_into_seeded_down_periods(tmp_path: Path) -> None:
    scenario = _load(tmp_path, FLAP)
    flaps = [a for a in expand(scenario, seed=7) if a.label.startswith("wobble")]  # type: ignore[arg-type]
    assert [(a.kind, a.label) for a in flaps] == [
        ("apply", "wobble"), ("revert", "wobble"),
        ("apply", "wobble#1"), ("revert", "wobble#1"),
        ("apply", "wobble#2"), ("revert", "wobble#2"),
    ]  # fmt: skip
    for n, (down, up) in enumerate(zip(flaps[::2], flaps[1::2], strict=True)):
        assert 40.0 + 2.0 * n <= down.at_s <= 40.0 + 2.0 * n + 0.3  # jitter within its bound
        assert up.at_s - down.at_s == pytest.approx(0.5)  # 25 % of a 2 s period
    # The same seed replays the same jitter; another seed draws another.
    again = [a.at_s for a in expand(scenario, seed=7) if a.label.startswith("wobble")]  # type: ignore[arg-type]
    other = [a.at_s for a in expand(scenario, seed=8) if a.label.startswith("wobble")]  # type: ignore[arg-type]
    assert again == [a.at_s for a in flaps]
    assert other != again


def test_objective_on_the_revert_judges_how_the_network_came_back() -> None:
    apply = EventMetrics("s", "cut", "apply", 1000, 1000, 1.0, 1.0, 0.0, 1.0, 0.001, recovered_during_event=False)
    revert = EventMetrics("s", "cut", "revert", 1000, 3, 0.003, 0.003, 0.0, 0.004, 0.001)
    objective = Objective("expect[0]", probe="s", step="cut", event="revert", max_recovery_s=0.5)
    verdicts = evaluate([objective], [apply, revert], {"cut": "cut"})
    assert [(v.event, v.passed) for v in verdicts] == [("cut (revert)", True)]
