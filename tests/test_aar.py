"""The after-action report (`drill aar RUN_DIR`) from hand-written results documents that follow
issue 15's shape (results.json's `exercise` section and `verdicts`): a run with a hold, a skip,
a manual fire, a gate released and a missed objective; the suggested ratings and their rule;
ratings.yaml overrides and its errors; improvement-plan.csv. Pure unit tests: no kernel."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from test_reports import sample_results

from drills.cli import main
from drills.errors import BadInput
from drills.reports import write_aar
from drills.reports.aar import PLAN_COLUMNS, build, tplus
from drills.reports.aar_md import render_aar_markdown
from drills.reports.aar_model import read_exercise
from drills.reports.aar_rating import grade


def _inject(ident: str, planned_s: float, **over: Any) -> dict[str, Any]:
    base = {
        "id": ident, "index": 0, "planned_s": planned_s, "due_s": planned_s, "trigger": "time", "after": None, "gate": False,
        "status": "delivered", "delivered_s": planned_s + 0.01, "delivered_exercise_s": planned_s + 0.01, "how": "time", "source": None, "reverted_s": None,
        "fault": "link-down", "detail": f"link {ident} down",
        "inject": {"phase": "Move 1", "type": "event", "method": "simulated alarm", "from": "SIMCELL", "to": "NOC Tokyo",
                   "title": f"title of {ident}", "description": "", "expected_actions": "", "objectives": [],
                   "controller": "Lead controller", "evaluator_notes": "", "scenario_time": None, "extra": {}},
    }  # fmt: skip
    inject = dict(base["inject"])  # type: ignore[call-overload]
    inject.update(over.pop("inject", {}))
    return base | over | {"inject": inject}


def _verdict(name: str, what: str, event: str, value: float | None, accuracy: float, limit: float, passed: bool) -> dict[str, Any]:
    measured = "never recovered" if value is None else f"{value * 1e3:.1f} ms ± {accuracy * 1e3:.1f} ms"
    return {"objective": f"{name}: {what}", "probe": "voice", "event": event, "measured": measured,
            "bound": f"<= {limit * 1e3:g} ms", "passed": passed, "value": value, "accuracy": accuracy,
            "limit": limit, "unit": "s", "at_least": False}  # fmt: skip


def exercise_results() -> dict[str, Any]:
    """A controlled exercise: cut-1 on time; sat-1 (manual) fired by hand during which the
    controller held the timeline; lte-1 waited at its gate and was released; note-1 skipped.
    dispatch-outage met with margin, sat-backup met only within its accuracy, lte-loss missed."""
    results = sample_results(passed=False)
    results["duration_s"] = 120.0
    results["verdicts"] = [
        _verdict("dispatch-outage", "outage", "cut-1 (apply)", 0.002, 0.0015, 0.05, True),
        _verdict("sat-backup", "recovery", "sat-1 (apply)", 4.5, 0.4, 5.0, True),
        _verdict("lte-loss", "outage", "lte-1 (apply)", 9.0, 0.01, 2.0, False),
    ]
    results["exercise"] = {
        "title": "Pacific Link 2026", "scenario_start": "2026-03-11T09:30", "controlled": True,
        "started_at": "2026-12-04T03:40:00Z",
        "participants": [
            {"name": "NOC Tokyo", "organisation": "JP Telecom", "role": "player"},
            {"name": "NOC Sydney", "organisation": "AU Telecom", "role": "player"},
            {"name": "Lead evaluator", "organisation": "Joint team", "role": "evaluator"},
        ],
        "objectives": [
            {"id": "O1", "title": "Keep emergency communications between the two countries", "capability_targets": [
                {"id": "O1.1", "title": "Dispatch traffic back within 50 ms of a cable cut", "expect": ["dispatch-outage"]},
                {"id": "O1.2", "title": "Satellite backup within 5 s", "expect": ["sat-backup"]},
            ]},
            {"id": "O2", "title": "Keep the disaster site connected", "capability_targets": [
                {"id": "O2.1", "title": "LTE backhaul loss costs under 2 s", "expect": ["lte-loss"]},
                {"id": "O2.2", "title": "Inform the public within 10 minutes", "expect": []},
            ]},
        ],
        "injects": [
            _inject("cut-1", 10.0, reverted_s=30.0, inject={"objectives": ["O1.1"]}),
            _inject("sat-1", 40.0, trigger="manual", delivered_s=45.0, delivered_exercise_s=45.0, how="fired", source="page", reverted_s=70.0,
                    inject={"objectives": ["O1.2"]}),
            _inject("lte-1", 80.0, gate=True, due_s=90.0, delivered_s=95.0, delivered_exercise_s=80.0, how="released", source="terminal",
                    reverted_s=110.0, inject={"objectives": ["O2.1"]}),
            _inject("note-1", 100.0, status="skipped", delivered_s=None, delivered_exercise_s=None, how=None, source="page", fault="note",
                    detail="Press asks for a statement", inject={"objectives": ["O2"], "title": "=HYPERLINK(\"x\")"}),
        ],
        "holds": [
            {"start_s": 50.0, "end_s": 60.0, "reason": "controller", "source": "page"},
            {"start_s": 90.0, "end_s": 95.0, "reason": "gate lte-1", "source": "gate"},
        ],
        "held_s": 15.0,
        "observations": [
            {"at_s": 12.0, "exercise_s": 12.0, "text": "+ NOC Tokyo rerouted at once", "objective": "O1.1", "source": "page"},
            {"at_s": 100.0, "exercise_s": 85.0, "text": "afi: the runbook lacks the LTE fallback", "objective": "O2.1", "source": "terminal"},
            {"at_s": 101.0, "exercise_s": 86.0, "text": "<script>alert(1)</script> | *x*", "objective": None, "source": "page"},
        ],
        "stop": None,
        "log": [
            {"at_s": 45.0, "source": "page", "command": "fire", "argument": "sat-1", "ok": True, "message": "sat-1 delivered"},
            {"at_s": 50.0, "source": "page", "command": "hold", "argument": "", "ok": True, "message": "held"},
            {"at_s": 60.0, "source": "page", "command": "resume", "argument": "", "ok": True, "message": "resumed after 10.0 s"},
            {"at_s": 95.0, "source": "terminal", "command": "release", "argument": "lte-1", "ok": True, "message": "lte-1 released"},
            {"at_s": 96.0, "source": "page", "command": "skip", "argument": "note-1", "ok": True, "message": "note-1 skipped"},
            {"at_s": 97.0, "source": "page", "command": "skip", "argument": "cut-1", "ok": False, "message": "cut-1 was delivered"},
        ],
    }  # fmt: skip
    return results


def _run_dir(tmp_path: Path, results: dict[str, Any] | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(json.dumps(results if results is not None else exercise_results()))
    return run


def _ratings(aar_targets: Any) -> dict[str, tuple[str | None, str | None]]:
    return {r.target.id: (r.suggestion.rating, r.final) for r in aar_targets}


def test_suggested_ratings_follow_the_rule() -> None:
    aar = build(exercise_results())
    assert _ratings(aar.targets) == {"O1.1": ("P", "P"), "O1.2": ("S", "S"), "O2.1": ("M", "M"), "O2.2": (None, None)}
    reasons = {r.target.id: " / ".join(r.suggestion.reasons) for r in aar.targets}
    assert "met with margin 46.5 ms" in reasons["O1.1"]
    assert "met only within its accuracy: margin 100.0 ms < accuracy 400.0 ms" in reasons["O1.2"]
    assert "inject sat-1 was fired by hand (page), as planned (trigger: manual)" in reasons["O1.2"]  # lowers nothing
    assert "the timeline was held while inject sat-1 was in play (controller)" in reasons["O1.2"]
    assert "missed: measured 9000.0 ms ± 10.0 ms, bound <= 2000 ms" in reasons["O2.1"]
    assert "inject lte-1 waited at a decision gate until released" in reasons["O2.1"]
    assert "inject note-1 was skipped" in reasons["O2.1"]  # it supports O2, the target's objective
    assert "the evaluators rate it" in reasons["O2.2"]


def test_a_stop_before_a_targets_inject_and_a_figure_never_recovered_are_u() -> None:
    results = exercise_results()
    ex = results["exercise"]
    ex["stop"] = {"at_s": 85.0, "exercise_s": 75.0, "reason": "ENDEX: real-world emergency", "source": "terminal"}
    ex["injects"][2] |= {"status": "not-delivered", "delivered_s": None, "delivered_exercise_s": None, "how": None, "reverted_s": None}
    results["verdicts"][0] = _verdict("dispatch-outage", "outage", "cut-1 (apply)", None, 0.0015, 0.05, False)
    aar = build(results)
    assert _ratings(aar.targets)["O1.1"] == ("U", "U")
    assert _ratings(aar.targets)["O2.1"] == ("U", "U")
    reasons = " / ".join(next(r for r in aar.targets if r.target.id == "O2.1").suggestion.reasons)
    assert "inject lte-1 was never delivered: the exercise was stopped first (ENDEX: real-world emergency)" in reasons
    assert "T+00:01:15 (drill time 85.00 s, 03:41:25Z) by terminal: ENDEX: real-world emergency" in render_aar_markdown(aar)


def test_a_target_whose_figures_are_missing_could_not_be_evaluated() -> None:
    results = exercise_results()
    results["verdicts"] = results["verdicts"][:2]
    assert _ratings(build(results).targets)["O2.1"] == ("U", "U")


def test_verdicts_without_numbers_are_read_from_their_texts() -> None:
    results = exercise_results()
    for v in results["verdicts"]:
        for key in ("value", "accuracy", "limit", "unit", "at_least"):
            del v[key]
    assert _ratings(build(results).targets)["O1.1"] == ("P", "P")
    assert _ratings(build(results).targets)["O1.2"] == ("S", "S")
    assert _ratings(build(results).targets)["O2.1"] == ("M", "M")


def test_an_availability_figure_is_a_minimum() -> None:
    figure = read_exercise(
        exercise_results() | {"verdicts": [{"objective": "a: availability", "probe": "p", "event": "whole drill",
                                            "measured": "99.500 %", "bound": ">= 99 %", "passed": True}]}
    ).figures[0]  # fmt: skip
    assert figure.at_least and grade(figure).grade == "P" and grade(figure).margin == pytest.approx(0.5)


def test_the_aar_shows_the_msel_as_played(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    written = write_aar(run)
    assert [p.name for p in written] == ["aar.html", "aar.md", "improvement-plan.csv", "ratings.yaml"]
    md = (run / "aar.md").read_text()
    html = (run / "aar.html").read_text()
    for text in (md, html):
        assert "Pacific Link 2026" in text and "2026-03-11T09:30" in text and "JP Telecom" in text
        assert "fired" in text and "released" in text and "skipped" in text
        assert "2026-03-11T09:30:10" in text  # cut-1 on the scenario's clock: its start + T+10 s
        assert "T+00:01:20" in text  # lte-1 released at drill 95 s, 15 s held before: exercise T+80 s, as planned
        assert "15.0 s in 2 holds" in text and "gate lte-1" in text
        assert "skip cut-1" in text and "refused" in text
        assert "NOC Tokyo rerouted at once" in text and "the runbook lacks the LTE fallback" in text
        assert "<script>alert" not in text  # evaluator text is escaped
        assert "03:40:45Z" in text  # sat-1 fired 45 s after the start, on the wall clock
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<table class="ratings">' in html and "verdict fail" in html  # an M: the header is red
    assert "\\<script\\>" in md and "\\| \\*x\\*" in md


def test_the_improvement_plan_csv(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    write_aar(run)
    data = (run / "improvement-plan.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == PLAN_COLUMNS
    assert [r[:4] for r in rows[1:]] == [
        ["O2 Keep the disaster site connected", "O2.1 LTE backhaul loss costs under 2 s", "M",
         "LTE backhaul loss costs under 2 s: performed with major challenges"],
        ["O2 Keep the disaster site connected", "O2.1 LTE backhaul loss costs under 2 s", "", "the runbook lacks the LTE fallback"],
    ]  # fmt: skip
    assert all(r[5:] == [""] * 6 for r in rows[1:])  # the planners' cells
    assert "lte-loss: outage" in rows[1][4]


def test_a_formula_in_scenario_text_stays_text_in_the_csv(tmp_path: Path) -> None:
    results = exercise_results()
    results["exercise"]["objectives"][1]["capability_targets"][0]["title"] = "=cmd|' /C calc'!A0"
    run = _run_dir(tmp_path, results)
    write_aar(run)
    rows = list(csv.reader(io.StringIO((run / "improvement-plan.csv").read_text(encoding="utf-8-sig"))))
    assert rows[1][3].startswith("'=cmd")


def test_the_ratings_template_rates_every_target_when_uncommented(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    write_aar(run)
    text = (run / "ratings.yaml").read_text()
    assert '"O1.2":  # Satellite backup within 5 s: suggested S' in text
    uncommented = re.sub(r"^  # ", "  ", text, flags=re.MULTILINE)  # as an evaluator would
    (run / "ratings.yaml").write_text(uncommented)
    with pytest.raises(BadInput, match=r"ratings.yaml:\d+:\d+: ratings.O2.2.rating: rating is missing"):
        write_aar(run)  # O2.2 has no suggestion: the evaluators must rate it, nothing is assumed
    (run / "ratings.yaml").write_text(uncommented.replace("rating:  # P, S, M or U", "rating: U  #"))
    write_aar(run)
    aar = build(json.loads((run / "results.json").read_text()), run / "ratings.yaml")
    assert {k: v[1] for k, v in _ratings(aar.targets).items()} == {"O1.1": "P", "O1.2": "S", "O2.1": "M", "O2.2": "U"}


def test_ratings_yaml_overrides_the_suggestion(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "ratings.yaml").write_text(
        'ratings:\n  O1.2: {rating: M, by: "Lead evaluator", reason: "backup up only after a manual <b>restart</b>"}\n'
        "  O2.2:\n    rating: S\n"
    )
    written = write_aar(run)
    assert "ratings.yaml" not in [p.name for p in written]  # the evaluators' file is never overwritten
    aar = build(json.loads((run / "results.json").read_text()), run / "ratings.yaml")
    assert _ratings(aar.targets)["O1.2"] == ("S", "M") and _ratings(aar.targets)["O2.2"] == (None, "S")
    html = (run / "aar.html").read_text()
    assert "Rated by Lead evaluator: backup up only after a manual &lt;b&gt;restart&lt;/b&gt;" in html
    rows = list(csv.reader(io.StringIO((run / "improvement-plan.csv").read_text(encoding="utf-8-sig"))))
    assert [r[1] for r in rows[1:]][:2] == ["O1.2 Satellite backup within 5 s", "O2.1 LTE backhaul loss costs under 2 s"]
    assert "Lead evaluator: backup up only after a manual <b>restart</b>" in rows[1][4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ratings:\n  O9.9: {rating: P}\n", "ratings.yaml:2:3: ratings.O9.9: no capability target 'O9.9' in this exercise; its targets: O1.1, O1.2, O2.1, O2.2"),
        ("ratings:\n  O1.1: {rating: X}\n", "ratings.yaml:2:18: ratings.O1.1.rating: rating is 'X'; give one of P, S, M, U"),
        ("ratings:\n  O1.1:\n    by: me\n", "ratings.yaml:2:3: ratings.O1.1.rating: rating is missing; give one of P, S, M, U"),
        ("ratings:\n  O1.1: {rating: P, score: 3}\n", "ratings.yaml:2:21: ratings.O1.1.score: unknown key 'score'; allowed: rating, by, reason"),
        ("ratings:\n  O1.1: {rating: P, reason: [a]}\n", "ratings.yaml:2:29: ratings.O1.1.reason: expected text (quote it)"),
        ("rating:\n  O1.1: {rating: P}\n", "ratings.yaml:1:1: rating: unknown key 'rating'; the file has one key, `ratings:`"),
        ("ratings: [O1.1]\n", "ratings.yaml:1:10: ratings: expected a mapping of capability target ids to {rating, by, reason}"),
        ("ratings:\n  O1.1: {rating: P\n", "ratings.yaml:3:1"),
        ("ratings:\n  O1.1: {rating: P, by: " + '"' + "x" * 201 + '"}\n', "ratings.O1.1.by: 201 characters; at most 200"),
    ],
)  # fmt: skip
def test_a_bad_ratings_yaml_is_refused_with_its_line(tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path)
    (run / "ratings.yaml").write_text(text)
    assert main(["aar", str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err and "run `drill aar` again" in err and "Traceback" not in err
    assert not (run / "aar.html").exists()


def test_drill_aar_writes_into_another_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path)
    out = tmp_path / "handout"
    assert main(["aar", str(run), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["aar.html", "aar.md", "improvement-plan.csv", "ratings.yaml"]
    assert str(out / "aar.html") in capsys.readouterr().out
    assert not (run / "aar.html").exists()


def test_a_results_json_without_an_exercise_or_with_a_wrong_type_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = exercise_results()
    del results["exercise"]
    assert main(["aar", str(_run_dir(tmp_path, results))]) == 2
    assert "has no `exercise` section" in capsys.readouterr().err
    results = exercise_results()
    results["exercise"]["injects"][1]["planned_s"] = "soon"
    with pytest.raises(BadInput, match=r"exercise\.injects\[1\]\.planned_s is str, expected a number"):
        build(copy.deepcopy(results))


def test_exercise_time_as_the_msel_writes_it() -> None:
    assert tplus(0) == "T+00:00:00" and tplus(80.0) == "T+00:01:20" and tplus(3723.456) == "T+01:02:03.46"
    assert tplus(59.999) == "T+00:01:00"  # rounded to hundredths first: never `00:00:59.100`


def test_verdicts_carry_their_figures_as_numbers() -> None:
    from drills.measure import EventMetrics
    from drills.objectives import evaluate
    from drills.scenario.expect import Objective

    metric = EventMetrics("s", "cut", "apply", 1000, 48, 0.0485, 0.0485, 0.0, None, 0.001)
    outage, recovery = evaluate([Objective("x", probe="s", step="cut", max_outage_s=0.05, max_recovery_s=1.0)], [metric], {"cut": "cut"})
    assert (outage.value, outage.accuracy, outage.limit, outage.unit, outage.at_least) == (0.0485, 0.001, 0.05, "s", False)
    assert outage.passed and grade(read_exercise(exercise_results() | {"verdicts": [asdict(outage)]}).figures[0]).grade == "S"
    assert recovery.value is None and recovery.passed is False and recovery.limit == 1.0


HOSTILE = "<script>alert(1)</script> **x** | [l](http://e) \x1b[2J \u202e"


def _poison(value: Any) -> Any:
    """Every text of the exercise section hostile (ids and enumerations kept, so it still reads)."""
    if isinstance(value, dict):
        keep = ("id", "status", "how", "trigger", "role", "objective", "objectives", "expect", "after")
        return {k: (v if k in keep else _poison(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(v) for v in value]
    return HOSTILE if isinstance(value, str) and not value.startswith(("20", "T")) else value


def test_hostile_text_is_inert_in_every_file(tmp_path: Path) -> None:
    results = exercise_results()
    results["exercise"] = _poison(results["exercise"])
    run = _run_dir(tmp_path, results)
    write_aar(run)
    html = (run / "aar.html").read_text()
    md = (run / "aar.md").read_text()
    csv_text = (run / "improvement-plan.csv").read_text(encoding="utf-8-sig")
    template = (run / "ratings.yaml").read_text()
    assert HOSTILE.count("<") and "<script" not in html and "&lt;script&gt;" in html
    assert not re.search(r"(?<!\\)[<\[*]", md.replace("**", "")) and "\\<script\\>" in md  # every one escaped
    for text in (html, md, csv_text, template):
        assert "\x1b" not in text and "\u202e" not in text, text[:200]
        assert "\\x1b" in text or text is template
    assert not [line for line in template.splitlines() if not line.startswith(("#", "  #", "ratings:"))]


def test_the_fixture_follows_the_results_schema() -> None:
    import jsonschema

    from drills.results import results_schema

    jsonschema.Draft202012Validator(results_schema()).validate(exercise_results())


PLAYED = """
  - {id: cut, at: 10s, fault: link-down, link: l1, for: 5s, inject: {title: Cable A cut, objectives: [O1.1]}}
  - {id: sat, at: 20s, fault: link-down, link: l2, for: 5s, trigger: manual, inject: {objectives: [O1.2]}}
  - {id: lte, at: 30s, fault: link-down, link: l1, for: 5s, gate: true, inject: {objectives: [O2.1]}}
  - {id: news, at: 40s, fault: note, text: "press call", inject: {objectives: [O2]}}
"""
PLAYED_EXERCISE = """
expect:
  - {name: dispatch-outage, probe: p, step: cut, max_outage: 50ms}
  - {name: sat-backup, probe: p, step: sat, max_recovery: 5s}
  - {name: lte-loss, probe: p, step: lte, max_outage: 2s}
exercise:
  title: Played for real
  scenario_start: "2026-03-11T09:30"
  participants: [{name: NOC Tokyo, organisation: JP Telecom}]
  objectives:
    - {id: O1, title: Keep calls up, capability_targets: [
        {id: O1.1, title: Dispatch back, expect: [dispatch-outage]}, {id: O1.2, title: Backup, expect: [sat-backup]}]}
    - {id: O2, title: Disaster site, capability_targets: [{id: O2.1, title: LTE loss, expect: [lte-loss]}]}
"""


def test_the_aar_of_what_the_real_player_recorded(tmp_path: Path) -> None:
    """The exercise section as drills.engine.player records it (a real player and control desk
    on a scripted fake clock; the figures hand-written): every command shows in the AAR."""
    from test_player import ScriptedClock, play, scenario

    from drills.engine.control import ExerciseControl

    sc = scenario(tmp_path, PLAYED, PLAYED_EXERCISE)
    control = ExerciseControl()
    clock = ScriptedClock([
        (22.0, lambda: control.fire("sat", "page")), (26.0, lambda: control.hold("page")), (28.0, lambda: control.resume("page")),
        (34.0, lambda: control.release("lte", "terminal")), (35.0, lambda: control.skip("news", "page")),
        (36.0, lambda: control.observe("afi: no LTE fallback in the runbook", "O2.1", "terminal")),
    ])  # fmt: skip
    player, _ = play(sc, clock, control)
    assert all(answer.ok for answer in clock.answers), clock.answers
    results = exercise_results()
    results["exercise"] = json.loads(json.dumps(player.record()))
    results["verdicts"] = [
        _verdict("dispatch-outage", "outage", "cut (apply)", 0.002, 0.0015, 0.05, True),
        _verdict("sat-backup", "recovery", "sat (apply)", 1.0, 0.01, 5.0, True),
        _verdict("lte-loss", "outage", "lte (apply)", 9.0, 0.01, 2.0, False),
    ]
    import jsonschema

    from drills.results import results_schema

    jsonschema.Draft202012Validator(results_schema()).validate(results)
    aar = build(results)
    assert _ratings(aar.targets) == {"O1.1": ("P", "P"), "O1.2": ("S", "S"), "O2.1": ("M", "M")}
    reasons = {r.target.id: " / ".join(r.suggestion.reasons) for r in aar.targets}
    assert "inject sat was fired by hand (page), as planned (trigger: manual)" in reasons["O1.2"]
    assert "the timeline was held while inject sat was in play (controller)" in reasons["O1.2"]
    assert "inject lte waited at a decision gate until released" in reasons["O2.1"]
    assert "inject news was skipped" in reasons["O2.1"]
    md = render_aar_markdown(aar)
    assert "| lte | " in md and "| released | delivered | terminal |" in md
    assert "| skip news | yes |" in md and "| hold | yes |" in md and "no LTE fallback in the runbook" in md
    assert "2026-03-11T09:30:10" in md  # cut on the scenario's clock


def test_a_timed_inject_fired_by_hand_lowers_the_rating_a_manual_one_does_not() -> None:
    results = exercise_results()
    results["exercise"]["observations"] = []
    cut = results["exercise"]["injects"][0]
    cut |= {"how": "fired", "source": "terminal", "delivered_s": 5.0, "delivered_exercise_s": 5.0}
    reasons = build(results).targets[0].suggestion
    assert reasons.rating == "S" and "inject cut-1 was fired by hand (terminal) instead of at its planned time (trigger: time)" in reasons.reasons
    cut["trigger"] = "manual"
    assert build(results).targets[0].suggestion.rating == "P"


def test_a_drill_without_an_exercise_section_in_its_scenario_still_gets_a_report(tmp_path: Path) -> None:
    results = sample_results()
    results["exercise"] = {
        "title": "cut", "scenario_start": None, "participants": [], "objectives": [], "controlled": False,
        "started_at": "2026-12-04T03:40:00Z", "injects": [_inject("cut", 2.0, how="time")], "holds": [], "held_s": 0.0,
        "observations": [], "stop": None, "log": [],
    }  # fmt: skip
    run = _run_dir(tmp_path, results)
    assert main(["aar", str(run)]) == 0
    md = (run / "aar.md").read_text()
    assert "# After-action report: cut" in md and "No capability target to rate." in md and "| cut | title of cut |" in md
    assert "nothing to rate" in (run / "ratings.yaml").read_text()
    assert "NO RATINGS" in (run / "aar.html").read_text()
