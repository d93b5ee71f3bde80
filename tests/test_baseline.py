"""Baselines (`drill run --baseline DIR --save-baseline DIR`) and what `drill compare` weighs:
availability, loss and round-trip percentiles beside the recovery figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_reports import sample_results

from drills.errors import BadInput
from drills.reports import baseline
from drills.reports.compare import compare


def _phase(results: dict[str, Any], phase: str) -> dict[str, Any]:
    return next(p for p in results["phases"]["voice"] if p["phase"] == phase)


def test_availability_regresses_beyond_one_window_of_each_run() -> None:
    a = sample_results()
    b = copy.deepcopy(a)
    b["availability"]["voice"].update(unavailable=2, pct=100 * 7 / 9)  # two windows: within 2 x 11.1 %
    assert not any(d.regressed for d in compare(a, b).shares)
    b["availability"]["voice"].update(unavailable=3, pct=100 * 6 / 9)
    assert [(d.figure, d.regressed) for d in compare(a, b).shares if d.regressed] == [("availability", True)]


def test_random_loss_within_its_sampling_error_is_no_regression() -> None:
    # A satellite link losing 0.3 % of 20 000 packets in one run, 0.35 % in the next: chance.
    a = sample_results()
    _phase(a, "fault").update(sent=20000, lost=60, loss_pct=0.3)
    b = copy.deepcopy(a)
    _phase(b, "fault").update(lost=70, loss_pct=0.35)
    assert not compare(a, b).regressed
    _phase(b, "fault").update(lost=200, loss_pct=1.0)  # far beyond 4.9 sigma of either run
    worse = compare(a, b)
    assert worse.regressed and [(d.scope, d.figure) for d in worse.shares if d.regressed] == [("fault phase", "loss")]


def test_round_trip_percentiles_regress_when_the_distribution_moves_not_its_tail() -> None:
    a = sample_results()
    _phase(a, "fault").update(rtt_p50_s=0.001, rtt_p95_s=0.0015, rtt_p99_s=0.002)  # spread 1 ms
    b = copy.deepcopy(a)
    _phase(b, "fault").update(rtt_p99_s=0.0035)  # a noisier tail (spread 2.5 ms): within 3.5 ms
    assert not compare(a, b).regressed
    _phase(b, "fault").update(rtt_p50_s=0.011, rtt_p95_s=0.0115, rtt_p99_s=0.012)  # all 10 ms later
    regressed = [(d.event, d.figure) for d in compare(a, b).differences if d.regressed]
    assert regressed == [("fault phase", "rtt_p50_s"), ("fault phase", "rtt_p95_s"), ("fault phase", "rtt_p99_s")]
    # Below the floor (0.5 ms a run) nothing is judged: a busy host moves a round trip that much.
    _phase(b, "fault").update(rtt_p50_s=0.0018, rtt_p95_s=0.0023, rtt_p99_s=0.0028)
    assert not compare(a, b).regressed


def _write(directory: Path, results: dict[str, Any]) -> Path:
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps(results))
    return directory


def test_a_baseline_with_no_figure_in_common_is_refused(tmp_path: Path) -> None:
    other = sample_results()
    other["metrics"][0]["probe"] = "video"
    other["phases"] = {"video": other["phases"].pop("voice")}
    other["availability"] = {"video": other["availability"].pop("voice")}
    _write(tmp_path / "base" / "cut", other)
    run = _write(tmp_path / "run", sample_results())
    with pytest.raises(BadInput, match="no figure in common"):
        baseline.check(tmp_path / "base", "cut", run)
    assert baseline.check(tmp_path / "empty", "cut", run) is None  # none kept yet


def test_a_scenario_name_that_is_no_file_name_cannot_name_a_baseline(tmp_path: Path) -> None:
    run = _write(tmp_path / "run", sample_results())
    for name in ("../up", ".hidden", "a/b", ""):
        with pytest.raises(BadInput, match="cannot name a baseline"):
            baseline.save(tmp_path / "base", name, run)


CUT = """
version: 1
name: baseline-cut
seed: 1
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}]}
  links:
    - {name: ab, endpoints: [a:e1, b:e1]}
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: ab, for: CUT}
duration: 5s
"""


def test_a_regression_against_the_last_good_run_fails_and_is_not_kept(tmp_path: Path, drill: Any) -> None:
    base = tmp_path / "baselines"
    scenario = tmp_path / "cut.yaml"
    scenario.write_text(CUT.replace("CUT", "500ms"))
    # No baseline and none to be kept: refused, not a pass on nothing.
    first = drill("run", str(scenario), "--out", str(tmp_path / "r0"), "--baseline", str(base), timeout_s=120)
    assert first.returncode == 2 and "no baseline of scenario baseline-cut" in first.stderr, first.stderr
    # The first good run becomes the baseline.
    kept = drill("run", str(scenario), "--out", str(tmp_path / "r1"), "--baseline", str(base), "--save-baseline", str(base), timeout_s=120)
    assert kept.returncode == 0, kept.stderr
    saved = base / "baseline-cut" / "results.json"
    assert json.loads(saved.read_text())["run_id"] == json.loads((tmp_path / "r1" / "results.json").read_text())["run_id"]
    # The same drill with a cut three times as long: the outage regressed beyond both accuracies.
    scenario.write_text(CUT.replace("CUT", "1500ms"))
    worse = drill("run", str(scenario), "--out", str(tmp_path / "r2"), "--baseline", str(base), "--save-baseline", str(base), timeout_s=120)
    assert worse.returncode == 1, worse.stderr
    assert "B regressed" in worse.stdout and "not kept as the baseline: the run regressed" in worse.stderr, (worse.stdout, worse.stderr)
    assert '<p class="outcome">REGRESSED</p>' in (tmp_path / "r2" / "compare.html").read_text()  # beside the run's report
    assert json.loads(saved.read_text())["run_id"] == json.loads((tmp_path / "r1" / "results.json").read_text())["run_id"]
