"""Known answers (`expect_known:`): the schema's problems at their lines, the verdict rule, the
drill's outcome, results.json, JUnit, Markdown, and the validation table over trials.

Unit tests of logic, on fake figures (no kernel): the verdict rule is arithmetic on a measured
figure, its accuracy and a window. tests/test_trials_known.py runs the real thing.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_reports import sample_results

from drills.drill_result import DrillResult
from drills.errors import ScenarioError
from drills.known import FAIL, INCONCLUSIVE, PASS, judge, judge_one
from drills.measure import Baseline, EventMetrics
from drills.reports import render_html, render_junit, render_markdown
from drills.reports.validation import render_trials_markdown, validation_lines
from drills.results import outcome, results_schema
from drills.scenario import load_scenario
from drills.scenario.expect import KnownAnswer
from drills.trials import validation, validation_json

REPO = Path(__file__).resolve().parent.parent

HEAD = """\
version: 1
name: known-test
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links: [{name: wire, endpoints: [a:e1, b:e1]}]
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 1000}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: wire, for: 2s}
expect_known:
"""

BROKEN = HEAD + """\
  - {name: k, probe: strem, step: cutt, figure: outage, value: 2s, source: "x"}
  - {name: k, probe: stream, step: cut, figure: outage, value: 2s, tolerance: 0, source: "x"}
  - {name: k2, probe: stream, step: cut, figure: outage, value: 2s, tolerance: 1ms, window: [1s, 2s], source: "x"}
  - {name: k3, probe: stream, step: cut, figure: outage, value: 2s, window: [3s, 2s], source: "x"}
  - {name: k4, probe: stream, step: cut, figure: outage, value: 2s, window: [3s, 4s], source: "x"}
  - {name: k5, probe: stream, step: cut, figure: outages, value: 2 sec, window: [3s], source: " "}
  - {name: k6, probe: stream, step: cut, figure: outage, value: 2s, tolerance: 5ms}
  - {name: k7, probe: stream, step: cut, figure: outage, value: 2s, window: [2s, 2s], source: "x"}
duration: 6s
"""

# Every problem of BROKEN, by line (the loader sorts what the shape check and the references found).
BROKEN_PROBLEMS = [
    "F:13:5: expect_known[0]: a known answer needs `tolerance:` (it holds within value ± tolerance) or `window: [low, high]`",
    "F:13:22: expect_known[0].probe: unknown probe 'strem'; did you mean 'stream'?",
    "F:13:35: expect_known[0].step: no timeline step has id 'cutt'; did you mean 'cut'?",
    "F:14:12: expect_known[1].name: known answer name 'k' is used twice (first at line 13); give each its own name",
    "F:14:79: expect_known[1].tolerance: a tolerance of 0 can never hold: every measured figure carries an accuracy "
    "(about ±2 ms at 1000 packets/s), and a known answer passes only when the figure ± its accuracy lies inside; "
    "give the tolerance the answer has",
    "F:15:93: expect_known[2].window: give `tolerance:` or `window:`, not both",
    "F:16:77: expect_known[3].window: the window runs from 3.000 s down to 2.000 s; write it as [low, high]",
    "F:17:65: expect_known[4].value: the known value 2.000 s lies outside its own window [3.000 s, 4.000 s]; correct one of them",
    "F:18:50: expect_known[5].figure: 'outages' is not allowed here; did you mean 'outage'? (use one of: outage, time_to_recover, max_loss_period)",
    "F:18:66: expect_known[5].value: '2 sec' is not a duration; write a duration such as 500ms, 2s, 1m30s, or a clock time T+01:30",
    "F:18:81: expect_known[5].window: a window is two durations, [low, high], such as [3.4s, 3.9s]; got 1 item(s)",
    "F:18:95: expect_known[5].source: a known answer names its source: the standard and its section, or the derivation",
    "F:19:5: expect_known[6]: missing required key 'source'; add it",
    "F:20:77: expect_known[7].window: a window of no width (2.000 s to 2.000 s) can never hold: every measured figure "
    "carries an accuracy (about ±2 ms at 1000 packets/s), and a known answer passes only when the figure ± its "
    "accuracy lies inside; give the tolerance the answer has",
]


def test_every_problem_of_known_answers_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    rendered = [f"F:{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems]
    assert rendered == BROKEN_PROBLEMS


EVENTS = HEAD.replace(
    "  - {id: cut, at: 2s, fault: link-down, link: wire, for: 2s}\n",
    "  - {id: cut, at: 2s, fault: link-down, link: wire, for: 2s}\n"
    "  - {id: said, at: 1s, fault: note, text: hello}\n"
    "  - {id: down, at: 5s, fault: link-down, link: wire}\n"
    "  - {id: later, at: 6s, fault: link-down, link: wire}\n"
    "  - {at: 7s, restore: later}\n",
) + """\
  - {name: a, probe: stream, step: said, figure: outage, value: 2s, tolerance: 1s, source: "x"}
  - {name: b, probe: stream, step: down, event: revert, figure: outage, value: 2s, tolerance: 1s, source: "x"}
  - {name: c, probe: stream, step: down, figure: outage, value: 2s, tolerance: 1s, source: "x"}
  - {name: d, probe: stream, step: later, event: revert, figure: outage, value: 2s, tolerance: 1s, source: "x"}
  - {name: e, probe: stream, step: cut, event: revert, figure: outage, value: 2s, tolerance: 1s, source: "x"}
"""


def test_a_known_answer_names_a_step_with_the_event_it_judges(tmp_path: Path) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(EVENTS)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    rendered = [f"{p.line}: {p.path}: {p.message}" for p in caught.value.problems if p.path.startswith("expect_known")]
    assert rendered == [
        "17: expect_known[0].step: step 'said' is a note: nothing happens at it to measure; name the id of a fault's step",
        "18: expect_known[1].event: step 'down' is never lifted (no `for:`, and no step restores it), so it has no "
        "revert to judge; judge `event: apply`, or give the step a `for:`",
    ]  # c judges the apply, d a restored step's revert, e a revert after `for:`: all fine


def test_drill_validate_exits_2_on_a_broken_known_answer(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(HEAD + '  - {name: k, probe: stream, step: cut, figure: outage, value: 2s, source: "x"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "drills", "validate", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert f"{path}:13:5: expect_known[0]: a known answer needs `tolerance:`" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_valid_known_answer_resolves_to_its_window(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        HEAD
        + '  - {name: t, probe: stream, step: cut, figure: outage, value: 2s, tolerance: 10ms, source: "D = 2 s"}\n'
        + '  - {name: w, probe: stream, step: cut, event: revert, figure: time_to_recover, value: 3.61s,'
        + ' window: [3.4s, 3.9s], source: "RFC 5798"}\n'
    )
    tolerance, window = load_scenario(path).known
    assert (tolerance.low_s, tolerance.high_s, tolerance.tolerance_s) == pytest.approx((1.99, 2.01, 0.01))
    assert (window.event, window.metric_field, window.low_s, window.high_s, window.tolerance_s) == (
        "revert", "time_to_recover_s", 3.4, 3.9, None
    )  # fmt: skip


def test_the_example_scenario_states_its_known_answer() -> None:
    (known,) = load_scenario(REPO / "scenarios" / "known-cut-no-backup.yaml").known
    assert (known.figure, known.value_s, known.tolerance_s) == ("outage", 2.0, 0.05)


# --------------------------------------------------------------------------- the verdict rule

ANSWER = KnownAnswer("cut", "s", "cut", "apply", "outage", 2.0, 1.99, 2.01, "D = 2 s", 0.01)
CLEAN = Baseline(sent=1000, lost=0)


def metric(outage_s: float = 2.0, accuracy_s: float = 0.002, recover_s: float | None = 2.0, event: str = "cut") -> EventMetrics:
    return EventMetrics("s", event, "apply", 2000, int(outage_s * 1000), outage_s, outage_s, 0.0, recover_s, accuracy_s)


@pytest.mark.parametrize(
    ("outage_s", "accuracy_s", "verdict", "reason"),
    [
        (2.000, 0.002, PASS, "inside the window"),
        (2.008, 0.002, PASS, "inside the window"),  # 2.010 is the window's edge: inside
        (2.009, 0.002, FAIL, "reaches outside"),  # the truth may be inside, but drills cannot show it
        (1.991, 0.002, FAIL, "reaches outside"),
        (2.020, 0.002, FAIL, "above the window"),
        (1.900, 0.002, FAIL, "below the window"),
        (2.000, 0.011, FAIL, "reaches outside"),  # an accuracy wider than the tolerance can never pass
    ],
)
def test_a_known_answer_passes_only_when_measured_plus_minus_accuracy_is_inside(
    outage_s: float, accuracy_s: float, verdict: str, reason: str
) -> None:
    judged = judge_one(ANSWER, metric(outage_s, accuracy_s), CLEAN)
    assert judged.verdict == verdict and reason in judged.reason
    assert judged.passed is (verdict == PASS)
    assert (judged.measured_s, judged.accuracy_s, judged.event) == (outage_s, accuracy_s, "cut (apply)")


def test_no_figure_is_below_zero_whatever_its_accuracy() -> None:
    fast = KnownAnswer("fast", "s", "cut", "apply", "outage", 0.0, 0.0, 0.05, "a backup route in the kernel", None)
    assert judge_one(fast, metric(0.001, 0.003), CLEAN).verdict == PASS  # [0, 4 ms] is inside [0, 50 ms]
    assert judge_one(fast, metric(0.049, 0.003), CLEAN).verdict == FAIL


def test_a_missing_figure_a_dirty_baseline_or_no_event_is_inconclusive() -> None:
    recovery = KnownAnswer("r", "s", "cut", "apply", "time_to_recover", 2.0, 1.9, 2.1, "x", None)
    never = judge_one(recovery, metric(recover_s=None), CLEAN)
    assert (never.verdict, never.measured_s, never.passed) == (INCONCLUSIVE, None, None)
    assert "never recovered" in never.reason
    dirty = judge_one(ANSWER, metric(), Baseline(sent=1000, lost=3))
    assert dirty.verdict == INCONCLUSIVE and "baseline" in dirty.reason
    (unmeasured,) = judge([ANSWER], [], {"cut": "cut"}, {"s": CLEAN})
    assert (unmeasured.verdict, unmeasured.event, unmeasured.accuracy_s) == (INCONCLUSIVE, "cut (apply)", None)


def test_each_repetition_of_a_step_is_judged() -> None:
    metrics = [metric(2.0, event="cut"), metric(2.05, event="cut#1"), metric(2.0, event="other")]
    labels = {"cut": "cut", "cut#1": "cut", "other": "other"}
    judged = judge([ANSWER], metrics, labels, {"s": CLEAN})
    assert [(k.event, k.verdict) for k in judged] == [("cut (apply)", PASS), ("cut#1 (apply)", FAIL)]
    revert = KnownAnswer("r", "s", "cut", "revert", "outage", 0.0, 0.0, 0.01, "x", 0.01)
    assert [k.verdict for k in judge([revert], metrics, labels, {"s": CLEAN})] == [INCONCLUSIVE]  # no revert event


def test_a_failed_known_answer_fails_the_drill_and_an_unjudged_one_leaves_it_inconclusive() -> None:
    result = DrillResult("d", "r", 1, baselines={"s": CLEAN})
    passed, failed = judge_one(ANSWER, metric(), CLEAN), judge_one(ANSWER, metric(2.5), CLEAN)
    unjudged = judge_one(ANSWER, None, CLEAN)
    result.known = [passed]
    assert outcome(result) == "passed"
    result.known = [passed, unjudged]
    assert outcome(result) == "inconclusive"  # never a pass
    result.known = [unjudged, failed]
    assert outcome(result) == "failed"  # a fail wins over what could not be judged
    result.baselines = {"s": Baseline(sent=1000, lost=5)}
    assert outcome(result) == "inconclusive"  # a dirty baseline, as before


# --------------------------------------------------------------------------- results.json and reports


def known_entry(verdict: str, measured_s: float | None = 2.001, name: str = "cut-no-backup", **more: Any) -> dict[str, Any]:
    reasons = {"pass": "measured ± accuracy lies inside the window", "fail": "measured ± accuracy lies above the window",
               "inconclusive": "traffic never recovered: the figure is missing"}  # fmt: skip
    return {
        "name": name, "probe": "voice", "step": "cut", "event": "cut (apply)", "figure": "outage", "value_s": 2.0,
        "low_s": 1.99, "high_s": 2.01, "tolerance_s": 0.01, "source": "D = 2 s | *by* construction",
        "measured_s": measured_s, "accuracy_s": 0.002, "verdict": verdict, "reason": reasons[verdict],
        "passed": {"pass": True, "fail": False}.get(verdict),
    } | more  # fmt: skip


def with_known(*entries: dict[str, Any], outcome: str = "failed") -> dict[str, Any]:
    results = sample_results()
    results["known_answers"] = list(entries)
    results["outcome"] = outcome
    return results


def test_results_with_known_answers_follow_the_schema() -> None:
    results = with_known(known_entry("pass"), known_entry("fail", 2.05), known_entry("inconclusive", None))
    jsonschema.Draft202012Validator(results_schema()).validate(results)
    bad = copy.deepcopy(results)
    bad["known_answers"][0]["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(results_schema()).validate(bad)


def test_junit_has_one_case_per_known_answer() -> None:
    results = with_known(
        known_entry("pass", name="a"), known_entry("fail", 2.05, name="b"), known_entry("inconclusive", None, name="c")
    )
    suite = ET.fromstring(render_junit(results)).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase") if c.get("classname") == "cut.known_answers"}
    assert set(cases) == {f"{n} [voice / cut (apply) / outage]" for n in "abc"}
    a, b, c = (cases[f"{n} [voice / cut (apply) / outage]"] for n in "abc")
    assert a.find("system-out") is not None and a.find("failure") is None
    failure = b.find("failure")
    assert failure is not None and "measured 2050.0 ± 2.0 ms" in (failure.get("message") or "")
    assert "expected 2000.0 ± 10.0 ms (D = 2 s | *by* construction)" in (failure.get("message") or "")
    error = c.find("error")
    assert error is not None and "never recovered" in (error.get("message") or "")
    # 1 objective + 3 known answers + 1 measurement; the objective passed (sample_results).
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "1")


def test_an_unjudged_known_answer_does_not_make_every_case_an_error() -> None:
    suite = ET.fromstring(render_junit(with_known(known_entry("inconclusive", None), outcome="inconclusive")))
    node = suite.find("testsuite")
    assert node is not None and node.get("errors") == "1"  # the known answer only: the baseline was clean
    text = render_markdown(with_known(known_entry("inconclusive", None), outcome="inconclusive"))
    assert "A known answer could not be judged" in text and "The baseline was not clean" not in text


def test_markdown_has_a_known_answers_table_with_escaped_text() -> None:
    text = render_markdown(with_known(known_entry("fail", 2.05)))
    assert "## Known answers" in text
    row = next(line for line in text.splitlines() if line.startswith("| FAIL | cut-no-backup"))
    # The source is the author's text: its Markdown is inert (| cannot add a column).
    assert "D = 2 s \\| \\*by\\* construction" in row and "2000.0 ± 10.0 ms" in row and "2050.0 ± 2.0 ms" in row
    assert "## Known answers" not in render_markdown(sample_results())
    page = render_html(with_known(known_entry("fail", 2.05)), {})
    assert 'id="known-answers"' in page and "D = 2 s | *by* construction" in page  # a table cell, escaped as HTML


# --------------------------------------------------------------------------- the validation table


def test_validation_rows_pass_only_when_every_trial_passed() -> None:
    runs = [
        with_known(known_entry("pass", 2.001, name="steady"), known_entry("pass", 2.0, name="mixed")),
        with_known(known_entry("pass", 2.003, name="steady"), known_entry("inconclusive", None, name="mixed")),
        with_known(known_entry("pass", 2.002, name="steady"), known_entry("fail", 2.5, name="shaky")),
    ]
    rows = {row.name: row for row in validation(runs)}
    steady, mixed, shaky = rows["steady"], rows["mixed"], rows["shaky"]
    assert (steady.verdict, steady.passed, steady.trials) == ("PASS", 3, 3)
    assert (steady.measured.min_s, steady.measured.median_s, steady.measured.max_s) == (2.001, 2.002, 2.003)
    assert steady.measured.accuracy_s == 0.002
    # A pass and a trial that could not judge it (a third without it at all): not a pass.
    assert (mixed.verdict, mixed.passed, mixed.inconclusive, mixed.measured.missing) == ("INCONCLUSIVE", 1, 2, 1)
    assert (shaky.verdict, shaky.failed, shaky.inconclusive) == ("FAIL", 1, 2)
    summary = {"trials": 3, "outcomes": ["passed", "inconclusive", "failed"], "outcome": "failed", "spreads": [],
               "validation": validation_json(list(rows.values()))}  # fmt: skip
    text = render_trials_markdown(summary, "known-test")
    assert "**Outcome: FAILED** over 3 trials" in text
    line = next(row for row in text.splitlines() if row.startswith("| steady"))
    assert line == (
        "| steady | outage | 2000.0 ± 10.0 ms | D = 2 s \\| \\*by\\* construction | 2001.0 / 2002.0 / 2003.0 ± 2.0 ms "
        "| 3 of 3 | PASS |"
    )
    assert "(never recovered: 1)" in next(row for row in text.splitlines() if row.startswith("| mixed"))


def test_a_repeated_steps_rows_name_their_event() -> None:
    rows = validation_json(
        validation([with_known(known_entry("pass"), known_entry("pass", event="cut#1 (apply)"))])
    )
    lines = validation_lines(rows)
    assert lines[2].startswith("| cut-no-backup | outage")
    assert lines[3].startswith("| cut-no-backup (cut\\#1 (apply)) | outage")  # `#` escaped, as every cell


def test_drill_plan_shows_the_known_answers() -> None:
    path = REPO / "scenarios" / "known-cut-no-backup.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "drills", "plan", "--json", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    (known,) = json.loads(proc.stdout)["known"]
    assert known == {
        "name": "cut-no-backup", "probe": "stream", "step": "cut", "event": "apply", "figure": "outage",
        "expected": "2000.0 ± 50.0 ms",
        "source": "by construction: a cut of D s with no backup path loses every packet for D s (D = 2 s)",
    }  # fmt: skip
