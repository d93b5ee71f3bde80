"""report.html and trials.html of a real drill (`drill run --trials 2` on namespaces: a
partition measured by real streams and the pair mesh), opened in a real headless chromium
(tests/browser_testing.py).

What the page must show is fixed by the scenario, not by timing: the outage objective (100 ms)
is missed by a one-second partition whatever the machine's load, the recovery objective (3 s)
is met, both pairs across the partition are cut as intended, one probe crosses the partition
(it loses packets and recovers) and one does not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_testing import browser_fixture, css, open_page, rows
from test_html_report import FAIL_BG, SECTIONS, body_text, header_colour, no_markdown, screenshot

pytestmark = pytest.mark.netns
browser = browser_fixture

BED = """
version: 1
name: html-split
topology:
  addressing: {ipv4: 198.18.46.0/24, loopbacks: 198.19.46.0/24}
  nodes:
    x: {routes: [{to: a1, via: a1:x}, {to: b1, via: b1:x}]}
    a1: {routes: [{to: default, via: x:a1}]}
    b1: {routes: [{to: default, via: x:b1}]}
  links:
    - {endpoints: [a1:x, x:a1]}
    - {endpoints: [b1:x, x:b1]}
probes:
  - {name: across, type: udp-stream, from: a1, to: b1, rate_pps: 200}
  - {name: hub, type: udp-stream, from: a1, to: x, rate_pps: 200}
timeline:
  - {id: split, at: 2s, fault: partition, groups: [[a1], [b1]], for: 1s}
expect:
  - {probe: across, step: split, max_recovery: 3s}
  - {probe: across, step: split, max_outage: 100ms}
duration: 5s
"""


def test_a_real_drills_reports_in_a_browser(tmp_path: Path, state_dir: Path, host_snapshot: object, browser: Any) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(BED)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "drills", "--state-dir", str(state_dir), "run", "--no-live", "--trials", "2", str(path), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the 100 ms outage objective is missed
    open_page(browser, out / "trial-1" / "report.html")
    assert browser.find_element("css selector", "header#verdict").get_attribute("class") == "verdict fail"
    assert browser.find_element("css selector", "header#verdict .outcome").text == "FAILED"
    reasons = [li.text for li in css(browser, "header#verdict ul.reasons li")]
    assert len(reasons) == 1 and reasons[0].startswith("Objective missed: expect[1]: outage (across, split (apply)): measured ")
    assert [s.get_attribute("id") for s in css(browser, "section")] == [s for s in SECTIONS if s != "known-answers"]
    no_markdown(body_text(browser))
    objectives = rows(browser, "table.objectives")
    assert [(r[0], r[1], r[2], r[5]) for r in objectives] == [
        ("PASS", "expect[0]: recovery", "across", "<= 3000 ms"),
        ("FAIL", "expect[1]: outage", "across", "<= 100 ms"),
    ]
    # One plot per probe: the crossing one lost packets and recovered; the other did neither.
    figures = {f.get_attribute("data-probe"): f for f in css(browser, "#plots figure.probe-plot")}
    assert sorted(figures) == ["across", "hub"]
    assert len(figures["across"].find_elements("css selector", "path.loss")) == 1
    # The partition's recovery; the lift's too when a packet was lost after it was issued.
    assert 1 <= len(figures["across"].find_elements("css selector", "line.recovered")) <= 2
    assert not figures["hub"].find_elements("css selector", "path.loss")
    for figure in figures.values():
        assert len(figure.find_elements("css selector", "rect.band")) == 1
        assert figure.find_elements("css selector", "polyline.rtt")
    # The pair grid: both directions across the partition cut, as intended.
    cells = {
        (c.get_attribute("data-source"), c.get_attribute("data-target")): (c.get_attribute("class"), c.text)
        for c in css(browser, "table.pair-grid td.pair")
    }
    assert cells == {("a1", "b1"): ("pair pass", "cut\nintended cut"), ("b1", "a1"): ("pair pass", "cut\nintended cut")}
    # The timeline: the partition and its lift, each with its skew.
    timeline = rows(browser, "table.timeline")
    assert [(r[0], r[1], r[2], r[3]) for r in timeline] == [
        ("T+2.0000", "apply", "split", "partition"),
        ("T+3.0000", "revert", "split", "partition"),
    ]
    assert all(r[8].endswith(" ms") for r in timeline)
    assert header_colour(browser, screenshot(browser, tmp_path / "report.png")) == FAIL_BG
    # trials.html: the set failed (the outage objective in both trials); both pairs cut in both.
    open_page(browser, out / "trials.html")
    assert browser.find_element("css selector", "header#verdict .outcome").text == "FAILED"
    assert browser.find_element("css selector", "header#verdict .facts").text == "2 trials: failed, failed"
    spreads = rows(browser, "table.spreads")
    assert {(r[0], r[1]) for r in spreads} == {("across", "split (apply)"), ("across", "split (revert)"), ("hub", "split (apply)"), ("hub", "split (revert)")}
    assert len(css(browser, "table.spreads td.range svg")) == len(spreads)  # every figure measured in both
    assert [(r[0], r[2], r[4]) for r in rows(browser, "table.pair-spreads")] == [
        ("PASS", "a1 → b1", "cut, cut"),
        ("PASS", "b1 → a1", "cut, cut"),
    ]
    no_markdown(body_text(browser))
    assert not any(state_dir.glob("runs/*"))
