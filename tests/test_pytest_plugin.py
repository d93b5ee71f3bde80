"""The pytest plugin (drills/pytest_plugin.py) used as a user would: a project run by pytest in
its own process (pytester), with real drills on real namespaces."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

# A chain a - b with no backup: a 1 s cut is a 1 s outage. One objective met, one missed.
CUT = """
version: 1
name: plugin-cut
seed: 1
topology:
  nodes:
    a: {routes: [{to: b, via: b:e1}]}
    b: {routes: [{to: a, via: a:e1}], SYSCTLS}
  links:
    - {name: ab, endpoints: [a:e1, b:e1]}
probes:
  - {name: stream, type: udp-stream, from: a, to: b, rate_pps: 200}
  - {name: ping, type: icmp, from: a, to: b, interval: 100ms, timeout: 200ms}
timeline:
  - {id: cut, at: 2s, fault: link-down, link: ab, for: 1s}
expect:
  - {name: generous, probe: stream, step: cut, max_outage: 5s}
  - {name: strict, probe: stream, step: cut, max_outage: 100ms}
duration: 5s
"""


def _scenario(pytester: pytest.Pytester, sysctls: str = "sysctls: {}") -> Path:
    path = pytester.path / "cut.yaml"
    path.write_text(CUT.replace("SYSCTLS", sysctls))
    return path


def test_the_plugin_is_inert_unless_a_drill_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "--drill=SCENARIO" in pytester.runpytest_subprocess("--help").stdout.str()


def test_objectives_and_measurements_are_items_with_their_figures(pytester: pytest.Pytester, state_dir: Path) -> None:
    path = _scenario(pytester)
    junit = pytester.path / "junit.xml"
    # Collected from the scenario alone: nothing is deployed to list the items.
    listed = pytester.runpytest_subprocess("--drill", str(path), "--drill-state-dir", str(state_dir), "--collect-only", "-q")
    names = [line.split("cut.yaml::")[1] for line in listed.stdout.lines if "cut.yaml::" in line]
    assert names == ["objective generous", "objective strict", "cut x stream", "cut x ping"], listed.stdout.lines
    assert not any(state_dir.glob("runs/*"))
    result = pytester.runpytest_subprocess("--drill", str(path), "--drill-state-dir", str(state_dir), f"--junitxml={junit}", "-p", "no:cacheprovider")
    # The strict objective is missed: its item fails with the figure, bound and accuracy.
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*objective strict missed*", "*stream / cut (apply): measured * ms ± * ms, bound <= 100 ms*"])
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["cut x stream"].iter("property")}
    assert float(properties["apply.outage_s"]) == pytest.approx(1.0, abs=0.05)  # a 1 s cut, no backup
    assert 0 < float(properties["apply.accuracy_s"]) < 0.05
    assert cases["objective strict"].find("failure") is not None
    assert not any(state_dir.glob("runs/*"))  # the engine tore the testbed down


def test_an_inconclusive_drill_is_an_error_never_a_pass(pytester: pytest.Pytester, state_dir: Path) -> None:
    # b ignores every echo request: the ping probe's baseline is all failures, not clean.
    path = _scenario(pytester, "sysctls: {net.ipv4.icmp_echo_ignore_all: 1}")
    result = pytester.runpytest_subprocess("--drill", str(path), "--drill-state-dir", str(state_dir), "-p", "no:cacheprovider")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*inconclusive*baseline*"])


def test_a_scenario_named_by_the_environment_variable_is_collected(pytester: pytest.Pytester, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _scenario(pytester)
    monkeypatch.setenv("DRILLS_SCENARIOS", str(path))
    listed = pytester.runpytest_subprocess("--drill-state-dir", str(state_dir), "--collect-only", "-q")
    assert any(line.endswith("::objective generous") for line in listed.stdout.lines), listed.stdout.lines


def test_a_bad_scenario_is_a_collection_error_with_its_line(pytester: pytest.Pytester) -> None:
    path = pytester.path / "bad.yaml"
    path.write_text("version: 1\nname: bad\ntopology:\n  nodes: {a: {}}\n  links: []\nprobes: []\nduration: nope\n")
    result = pytester.runpytest_subprocess("--drill", str(path), "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.yaml:7:11: duration: *not a duration*"])


def test_the_drill_fixture_runs_trials(pytester: pytest.Pytester, state_dir: Path) -> None:
    path = _scenario(pytester)
    pytester.makepyfile(
        f"""
        def test_trials(drill):
            runs = drill.run({str(path)!r}, trials=2)
            assert len(runs.results) == 2 and not runs.inconclusive
            assert not runs.passed  # the strict objective is missed in each
            assert all(abs(m.outage_s - 1.0) < 0.05 for r in runs.results for m in r.metrics if m.probe == "stream" and m.kind == "apply")
        """
    )
    result = pytester.runpytest_subprocess("--drill-state-dir", str(state_dir), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not any(state_dir.glob("runs/*"))


def test_ctrl_c_during_a_drill_leaves_nothing_behind(pytester: pytest.Pytester, state_dir: Path, host_snapshot: Any) -> None:
    from test_netns_integration import ours, run_dirs, wait_for_journal

    path = pytester.path / "long.yaml"
    path.write_text(CUT.replace("SYSCTLS", "sysctls: {}").replace("duration: 5s", "duration: 60s"))
    argv = [sys.executable, "-m", "pytest", "--drill", str(path), "--drill-state-dir", str(state_dir), "-p", "no:cacheprovider"]
    proc = subprocess.Popen(argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # The cut's intent is journaled before the drill clock starts: the drill is under way.
        wait_for_journal(state_dir, proc, lambda entry: entry.get("op") == "fault")  # type: ignore[arg-type]
        time.sleep(2.5)  # into the cut (at 2 s): a fault is in force when Ctrl-C comes
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        # No run directory, none of its namespaces, nothing else on the host.
        assert (run_dirs(state_dir), ours(host_snapshot), host_snapshot.leftovers()) == ([], [], [])
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait()


def test_drill_baseline_catches_a_regression_and_refuses_nothing(pytester: pytest.Pytester, state_dir: Path) -> None:
    path = pytester.path / "good.yaml"
    good = CUT.replace("SYSCTLS", "sysctls: {}").replace("  - {name: strict, probe: stream, step: cut, max_outage: 100ms}\n", "")
    path.write_text(good)
    base = pytester.path / "baselines"
    common = ["--drill", str(path), "--drill-state-dir", str(state_dir), "-p", "no:cacheprovider"]
    # Nothing kept yet and nothing to keep: the baseline item is an error, never a pass.
    pytester.runpytest_subprocess(*common, "--drill-baseline", str(base)).assert_outcomes(passed=3, errors=1)
    kept = pytester.runpytest_subprocess(*common, "--drill-baseline", str(base), "--drill-save-baseline", str(base))
    kept.assert_outcomes(passed=4)
    assert (base / "plugin-cut" / "results.json").is_file()
    # A cut three times as long: the outage regressed beyond both runs' accuracy.
    path.write_text(good.replace("for: 1s", "for: 3s").replace("duration: 5s", "duration: 7s"))
    worse = pytester.runpytest_subprocess(*common, "--drill-baseline", str(base))
    worse.assert_outcomes(passed=3, failed=1)
    worse.stdout.fnmatch_lines(["*plugin-cut regressed against its baseline*", "*stream / cut (apply): outage_s 1.0* s -> 3.0* s*"])


def test_known_answers_are_items(pytester: pytest.Pytester, state_dir: Path) -> None:
    path = pytester.path / "known.yaml"
    known = (
        "expect_known:\n"
        "  - {name: right, probe: stream, step: cut, figure: outage, value: 1s, tolerance: 100ms, source: 'a 1 s cut, no backup'}\n"
        "  - {name: wrong, probe: stream, step: cut, figure: outage, value: 3s, tolerance: 10ms, source: 'deliberately wrong'}\n"
    )
    path.write_text(CUT.replace("SYSCTLS", "sysctls: {}").replace("duration: 5s", known + "duration: 5s"))
    result = pytester.runpytest_subprocess("--drill", str(path), "--drill-state-dir", str(state_dir), "-p", "no:cacheprovider", "-rA")
    # generous + right + two measurements pass; strict and the wrong known answer fail.
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*known answer wrong failed*"])
    result.stdout.fnmatch_lines(["PASSED *known right*"])


def test_keep_up_leaves_the_testbed_up_for_debugging(pytester: pytest.Pytester, state_dir: Path) -> None:
    from drills import lifecycle

    path = _scenario(pytester)
    try:
        result = pytester.runpytest_subprocess("--drill", str(path), "--drill-state-dir", str(state_dir), "--drill-keep-up", "-p", "no:cacheprovider", "-s")
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(["*cut.yaml is up again as run * (--drill-keep-up); remove it with `drill down *`*"])
        assert len(lifecycle.list_runs(state_dir)) == 1  # up, for `drill exec` and friends
    finally:
        lifecycle.clean(state_dir, include_up=True)
    assert lifecycle.list_runs(state_dir) == []
