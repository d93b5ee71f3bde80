"""Reports rendered from results.json: JUnit parses, the schema holds, compare finds regressions."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import jsonschema

from drills.reports import render_html, render_junit, render_markdown
from drills.reports.compare import compare
from drills.results import results_schema


def sample_results(outage_s: float = 0.002, recover_s: float | None = 0.003, passed: bool = True) -> dict[str, Any]:
    return {
        "format": 1,
        "drills_version": "0.1.0",
        "scenario": {"name": "cut", "path": "cut.yaml"},
        "run_id": "abc123",
        "finished_at": "2026-11-21T10:00:00+0000",
        "seed": 1,
        "outcome": "passed" if passed else "failed",
        "environment": {"kernel": "6.18", "machine": "x86_64", "python": "3.11.7", "cpus": 2, "capabilities": {"netem qdisc": False}},
        "method": {
            "outage": "lost packets / offered rate",
            "accuracy": "one packet gap + ...",
            "offered_rate_pps": {"voice": 1000},
            "packet_size_bytes": {"voice": 64},
            "sustained_validation_s": 1.0,
            "forwarding_delay_threshold_s": {"voice": 2.0},
        },
        "duration_s": 10.0,
        "timeline": [
            {"label": "cut", "kind": "apply", "fault": "link-down", "scheduled_s": 2.0, "issued_s": 2.0001,
             "confirmed_s": 2.001, "skew_s": 0.001, "detail": "link l: a:e1, b:e1 down"},
            {"label": "cut", "kind": "revert", "fault": "link-down", "scheduled_s": 4.0, "issued_s": 4.0001,
             "confirmed_s": 4.002, "skew_s": 0.002, "detail": "link l: a:e1, b:e1 up again"},
        ],
        "baselines": {"voice": {"sent": 1000, "lost": 0, "clean": True}},
        "metrics": [
            {"probe": "voice", "event": "cut", "kind": "apply", "sent": 2000, "lost": int(outage_s * 1000),
             "outage_s": outage_s, "max_loss_period_s": outage_s, "time_to_detect_s": 0.0,
             "time_to_recover_s": recover_s, "accuracy_s": 0.0015, "recovered_during_event": True},
        ],
        "phases": {"voice": [
            {"phase": "baseline", "sent": 1000, "lost": 0, "loss_pct": 0.0, "rtt_p50_s": 0.0001, "rtt_p95_s": 0.0002, "rtt_p99_s": 0.0003},
            {"phase": "fault", "sent": 2000, "lost": 2, "loss_pct": 0.1, "rtt_p50_s": 0.0001, "rtt_p95_s": 0.0002, "rtt_p99_s": 0.0003},
            {"phase": "recovery", "sent": 6000, "lost": 0, "loss_pct": 0.0, "rtt_p50_s": None, "rtt_p95_s": None, "rtt_p99_s": None},
        ]},
        "availability": {"voice": {"window_s": 1.0, "threshold": 0.5, "windows": 9, "unavailable": 0, "pct": 100.0}},
        "verdicts": [
            {"objective": "failover: outage", "probe": "voice", "event": "cut (apply)", "measured": "2.0 ms ± 1.5 ms",
             "bound": "<= 50 ms", "passed": passed},
        ],
        "revert_failures": [],
        "samples_file": "samples.json.gz",
    }  # fmt: skip


SAMPLES = {
    "voice": {
        "rate_pps": 1000,
        "sent_ms": [0.0, 1.0, 2.0, 3.0],
        "rtt_us": [100, -1, 120, 90],
        "duplicates": 0,
        "reordered": 0,
    }
}


def test_sample_results_follow_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(results_schema())
    jsonschema.Draft202012Validator(results_schema()).validate(sample_results())


def test_junit_has_a_case_per_objective_and_per_measurement() -> None:
    root = ET.fromstring(render_junit(sample_results(passed=False)))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2" and suite.get("failures") == "1" and suite.get("errors") == "0"
    failure = suite.find("testcase/failure")
    assert failure is not None and "bound <= 50 ms" in (failure.get("message") or "")


def test_junit_marks_an_inconclusive_drill_as_errors() -> None:
    results = sample_results()
    results["outcome"] = "inconclusive"
    suite = ET.fromstring(render_junit(results)).find("testsuite")
    assert suite is not None and suite.get("errors") == "2"


def test_markdown_and_html_carry_the_figures_and_a_plot() -> None:
    text = render_markdown(sample_results())
    assert "**Outcome: PASSED**" in text and "2.0 ms ± 1.5 ms" in text and "sustained validation 1 s" in text
    page = render_html(sample_results(), SAMPLES)
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert 'stroke="#d0021b"' in page  # the lost packet is drawn


def test_the_method_says_how_much_cpu_time_the_host_took_while_the_clock_ran() -> None:
    results = sample_results()
    assert "steal" not in render_markdown(results) and "steal" not in render_html(results, SAMPLES)  # an older results.json
    results["method"]["host_steal_s"] = 0.02
    jsonschema.Draft202012Validator(results_schema()).validate(results)
    assert "Host steal time while the clock ran: 20 ms" in render_markdown(results)
    assert "Host steal time while the clock ran: 20 ms" in render_html(results, SAMPLES)
    results["method"]["host_steal_s"] = 0.0
    assert "Host steal time while the clock ran: none" in render_markdown(results)
    results["method"]["host_steal_s"] = None  # the kernel did not say
    jsonschema.Draft202012Validator(results_schema()).validate(results)
    assert "steal" not in render_markdown(results)


def test_compare_flags_a_regression_beyond_the_accuracy_bounds() -> None:
    base = sample_results(outage_s=0.002)
    same = compare(base, sample_results(outage_s=0.004))  # within 2 × 1.5 ms
    assert not same.regressed
    worse = compare(base, sample_results(outage_s=0.050))
    assert worse.regressed
    assert {d.figure for d in worse.differences if d.regressed} == {"outage_s", "max_loss_period_s"}
    never = compare(base, sample_results(recover_s=None))
    assert [d.figure for d in never.differences if d.regressed] == ["time_to_recover_s"]
    other = copy.deepcopy(base)
    other["metrics"][0]["event"] = "other"
    missing = compare(base, other)
    assert missing.only_in_a == ["voice / cut (apply)"] and missing.only_in_b == ["voice / other (apply)"]


def test_trials_spread_and_outcome() -> None:
    from drills.trials import aggregate, overall_outcome

    runs = [sample_results(outage_s=o, recover_s=r) for o, r in ((0.002, 0.003), (0.006, None), (0.004, 0.005))]
    spreads = {s.figure: s for s in aggregate(runs)}
    outage = spreads["outage_s"]
    assert (outage.min_s, outage.median_s, outage.max_s, outage.trials) == (0.002, 0.004, 0.006, 3)
    recovery = spreads["time_to_recover_s"]
    assert (recovery.min_s, recovery.max_s, recovery.never) == (0.003, 0.005, 1)
    assert overall_outcome(["passed", "inconclusive"]) == "inconclusive"
    assert overall_outcome(["inconclusive", "failed", "passed"]) == "failed"
    assert overall_outcome(["passed", "passed"]) == "passed"
