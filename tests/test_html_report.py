"""report.html, compare.html and trials.html: self-contained pages, checked in a real headless
chromium (tests/browser_testing.py) for their structure (verdict header and its colour, tables
with their rows, one plot per probe, the partition pair grid, the timeline), with no raw
Markdown anywhere in the page text, and a screenshot of the expected size that shows something;
and without a browser for what must never be in them (a script, an external reference, raw
scenario markup).

Every input is a fixed results document (no randomness, no timing); the real drill's page is
checked in tests/test_html_report_drill.py.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser_testing import (
    WINDOW,
    browser_fixture,
    colours,
    css,
    full_results,
    open_page,
    pixel,
    read_png,
    rows,
    unavailable,
)
from test_output_hygiene import NOTE, SHOWN
from test_reports import SAMPLES, sample_results

from drills.reports import render_html, write_all
from drills.reports.compare import compare
from drills.reports.html_sets import render_compare_html, render_trials_html
from drills.trials import aggregate, aggregate_pairs, overall_outcome, pair_spreads_json, validation, validation_json

browser = browser_fixture  # the module's chromium (imported fixture, used as `browser`)

SECTIONS = ["objectives", "known-answers", "recovery", "plots", "pairs", "phases", "timeline", "method", "environment"]
FAIL_BG = (0xFC, 0xE8, 0xE6)  # --fail-bg
PASS_BG = (0xE6, 0xF4, 0xEA)  # --pass-bg
INC_BG = (0xFF, 0xF4, 0xE0)  # --inc-bg
MARKDOWN = re.compile(r"\|\s*-{3,}\s*\||^\s*#{1,6} |\*\*[^*]+\*\*|^\s*\|.*\|\s*$", re.MULTILINE)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def body_text(driver: Any) -> str:
    return str(driver.find_element("css selector", "body").text)


def no_markdown(text: str) -> None:
    found = MARKDOWN.findall(text)
    assert not found, f"raw Markdown in the page text: {found[:3]}"


def screenshot(driver: Any, path: Path) -> tuple[int, int, list[bytes]]:
    """A screenshot of the viewport: a PNG exactly the window's inner size, showing more than a
    blank page (at least a dozen colours: text, table borders, the verdict's colour)."""
    driver.save_screenshot(str(path))
    png = read_png(path.read_bytes())
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    assert (png[0], png[1]) == tuple(inner), (png[:2], inner)
    assert png[0] == WINDOW[0]
    assert len(colours(png)) > 12
    return png


def header_colour(driver: Any, png: tuple[int, int, list[bytes]]) -> tuple[int, int, int]:
    """The verdict header's background in the screenshot: a pixel inside it, clear of its text."""
    header = driver.find_element("css selector", "header#verdict")
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.right, r.top];", header)
    return pixel(png, int(rect[0]) - 6, int(rect[1]) + 4)


# --------------------------------------------------------------------------- no browser: what must never be there


INERT_ATTRS = {"xmlns", "title", "aria-label"}  # never fetched: text, or the SVG namespace's name


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.references: set[str] = set()  # attribute values naming a URL (text attributes aside)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)
        self.references.update(value for name, value in attrs if value and "://" in value and name not in INERT_ATTRS and not name.startswith("data-"))


OWN_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "ul", "li", "section", "div",
    "table", "thead", "tbody", "tr", "th", "td", "span", "figure", "figcaption", "svg", "rect", "text", "line",
    "polyline", "path", "circle", "strong",
}  # fmt: skip


def self_contained(page: str) -> None:
    """No script, no event handler, nothing fetched (no src, href, url() or @import)."""
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= OWN_TAGS, parser.tags - OWN_TAGS
    assert not {a for a in parser.attrs if a.startswith("on")} and not parser.attrs & {"src", "href", "xlink:href"}
    assert "url(" not in page and "@import" not in page
    assert not parser.references, parser.references


def hostile(results: dict[str, Any], samples: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`results` with the hostile note (markup, controls, bidi, `<script>`) in every text a
    scenario or a host controls: names, steps, pairs' nodes, known answers, links, hosts."""
    results = copy.deepcopy(results)
    results["scenario"]["name"] = NOTE
    samples = {f"{name}{NOTE}": data for name, data in samples.items()}
    for m in results["metrics"]:
        m["probe"] += NOTE
    results["phases"] = {f"{k}{NOTE}": v for k, v in results["phases"].items()}
    results["baselines"] = {f"{k}{NOTE}": v for k, v in results["baselines"].items()}
    for step in results["timeline"]:
        step["label"] += NOTE
        step["detail"] += NOTE
    for p in results["partition_pairs"]:
        p["source"] += NOTE
        p["step"] += NOTE
    for k in results["known_answers"]:
        k["source"] = NOTE
        k["name"] += NOTE
    results["timeline_changes"][1]["error"] = NOTE
    results["hosts"][1]["host"] = NOTE
    results["link_engines"] = {NOTE: "userspace"}
    results["revert_failures"] = [NOTE]
    return results, samples


def test_every_section_and_no_markdown_without_a_browser() -> None:
    page = render_html(*full_results())
    self_contained(page)
    for ident in SECTIONS:
        assert f'<section id="{ident}"' in page
    assert "|---|" not in page and "<pre" not in page and "**Outcome" not in page


def test_scenario_text_is_inert_everywhere() -> None:
    page = render_html(*hostile(*full_results()))
    self_contained(page)
    assert "<script" not in page and "\x1b" not in page and "\u202e" not in page and "\r" not in page
    # The note shows as written, its controls as escapes: in a cell, a caption, a header.
    assert page.count(SHOWN.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")) >= 8


def test_the_header_lists_a_dozen_reasons_then_counts_the_rest() -> None:
    results, samples = full_results()
    pair = results["partition_pairs"][1]  # not as intended
    results["partition_pairs"] = [pair | {"target": f"n{k}"} for k in range(20)]
    header = render_html(results, samples).split("</header>")[0]
    reasons = re.findall(r"<li>(.*?)</li>", header)
    # The objective, the known answer, then ten of the twenty pairs, then the count.
    assert len(reasons) == 13 and reasons[-1] == "… and 10 more (see below)."


def test_compare_and_trials_pages_are_self_contained() -> None:
    results, _samples = hostile(*full_results())
    self_contained(render_compare_html(compare(results, results), NOTE, NOTE))
    self_contained(render_trials_html(trials_summary([results, results]), NOTE))


# --------------------------------------------------------------------------- report.html in chromium


def test_report_in_a_browser(browser: Any, tmp_path: Path) -> None:
    results, samples = full_results(probes=3)
    open_page(browser, write(tmp_path, "report.html", render_html(results, samples)))
    header = browser.find_element("css selector", "header#verdict")
    assert header.get_attribute("class") == "verdict fail"
    assert browser.find_element("css selector", "header#verdict .outcome").text == "FAILED"
    reasons = [li.text for li in css(browser, "header#verdict ul.reasons li")]
    assert reasons == [
        "Objective missed: expect[1]: outage (probe-00, cut (apply)): measured 2000.0 ms ± 1.5 ms, bound <= 50 ms.",
        "Known answer failed: cut-short (probe-00, cut (apply)): measured 2050.0 ± 1.5 ms, expected 2000.0 ± 10.0 ms: outside the window.",
        "Partition pair not as intended: split: b → a observed open, intended cut.",
        "Partition pair could not be judged: split: a → c observed unreachable, intended cut.",
    ]
    assert [s.get_attribute("id") for s in css(browser, "section")] == SECTIONS
    no_markdown(body_text(browser))
    # Objectives and known answers: a row each, marked and coloured by its verdict.
    assert rows(browser, "table.objectives") == [
        ["PASS", "expect[0]: recovery", "probe-00", "cut (apply)", "2000.0 ms ± 1.5 ms", "<= 3 s"],
        ["FAIL", "expect[1]: outage", "probe-00", "cut (apply)", "2000.0 ms ± 1.5 ms", "<= 50 ms"],
    ]
    assert [r.get_attribute("class") for r in css(browser, "table.objectives tbody tr")] == ["pass", "fail"]
    marks = css(browser, "table.objectives td.mark")
    assert [m.value_of_css_property("background-color") for m in marks] == ["rgba(230, 244, 234, 1)", "rgba(252, 232, 230, 1)"]
    assert [r[0] for r in rows(browser, "table.known")] == ["PASS", "FAIL"]
    # Recovery per fault event: one row per probe, with outage ± accuracy and lost / sent.
    recovery = rows(browser, "table.recovery")
    assert [r[0] for r in recovery] == ["probe-00", "probe-01", "probe-02"]
    assert recovery[1][3:8] == ["2.0 ms ± 1.5 ms", "2.0 ms ± 1.5 ms", "0.0 ms ± 1.5 ms", "2010.0 ms ± 1.5 ms", "2 of 2000"]
    # One plot per probe: the fault bands, the lost packets, a recovery instant, a line of round trips.
    figures = css(browser, "#plots figure.probe-plot")
    assert [f.get_attribute("data-probe") for f in figures] == ["probe-00", "probe-01", "probe-02"]
    for figure in figures:
        assert len(figure.find_elements("css selector", "svg")) == 1
        assert len(figure.find_elements("css selector", "rect.band")) == 2  # cut and split
        assert len(figure.find_elements("css selector", "path.loss")) == 1
        assert len(figure.find_elements("css selector", "line.recovered")) == 1
        assert len(figure.find_elements("css selector", "polyline.rtt")) == 2  # broken by the cut
    assert "sent 9000, lost 2001 (22.200 %)" in figures[1].find_element("css selector", "figcaption").text
    # The partition as a grid: a cell per pair, coloured by intended against observed.
    grid = browser.find_element("css selector", "table.pair-grid")
    assert grid.get_attribute("data-step") == "split"
    cells = {
        (c.get_attribute("data-source"), c.get_attribute("data-target")): (c.get_attribute("class"), c.text)
        for c in css(browser, "table.pair-grid td.pair")
    }
    assert cells == {
        ("a", "b"): ("pair pass", "cut\nintended cut"),
        ("b", "a"): ("pair fail", "open\nintended cut"),
        ("a", "c"): ("pair error", "unreachable\nintended cut"),
        ("c", "a"): ("pair pass", "cut\nintended cut"),
    }
    assert len(css(browser, "table.pair-grid td.self")) == 3 and len(css(browser, "table.pair-grid td.none")) == 2
    assert len(rows(browser, "table.pairs")) == 4
    # The timeline with its skews and the in-force instant, then the changes (one failed).
    timeline = rows(browser, "table.timeline")
    assert [r[:3] for r in timeline] == [["T+2.0000", "apply", "cut"], ["T+4.0000", "revert", "cut"],
                                         ["T+5.0000", "apply", "split"], ["T+7.0000", "revert", "split"]]  # fmt: skip
    assert [r[7:] for r in timeline] == [["-", "1.00 ms"], ["-", "2.00 ms"], ["T+5.0010", "3.00 ms"], ["-", "2.00 ms"]]
    assert [r.get_attribute("class") for r in css(browser, "table.changes tbody tr")] == ["", "fail"]
    method = browser.find_element("css selector", "#method").text
    assert "Recovery: a sustained loss-free run of 1 s." in method
    assert "Tolerated loss (random loss by design): probe-01 10 %: up to this share of samples may fail in isolation." in method
    assert rows(browser, "table.hosts") == [["h1", "0.0 ms", "0.0 ms", "0.0 ms"], ["h2", "-1.2 ms", "0.3 ms", "0.6 ms"]]
    assert rows(browser, "table.engines") == [["l", "kernel"], ["sat", "userspace"]]
    png = screenshot(browser, tmp_path / "report.png")
    assert header_colour(browser, png) == FAIL_BG


def test_fifty_probes_each_get_a_readable_plot(browser: Any, tmp_path: Path) -> None:
    open_page(browser, write(tmp_path, "report.html", render_html(*full_results(probes=50))))
    figures = css(browser, "#plots figure.probe-plot")
    assert len(figures) == 50
    body_w = browser.execute_script("return document.body.clientWidth")
    for figure in figures:
        svg = figure.find_element("css selector", "svg")
        # As wide as the page (the time axis stays readable), a compact strip each.
        assert svg.size["width"] >= 0.9 * (body_w - 40) and 100 <= svg.size["height"] <= 170, svg.size
    texts = [t.text for t in css(browser, "#plots figure.probe-plot figcaption")]
    assert len(set(texts)) == 50


@pytest.mark.parametrize(
    ("outcome", "cls", "word", "colour", "reason"),
    [
        ("passed", "pass", "PASSED", PASS_BG, "1 objectives met."),
        ("inconclusive", "inconclusive", "INCONCLUSIVE", INC_BG,
         "The baseline of voice was not clean: 12 of 1000 lost before the first fault (loss, or no traffic): nothing can be concluded."),
    ],
)  # fmt: skip
def test_verdict_header_says_why(browser: Any, tmp_path: Path, outcome: str, cls: str, word: str, colour: Any, reason: str) -> None:
    results = sample_results()
    if outcome == "inconclusive":
        results["outcome"] = "inconclusive"
        results["baselines"]["voice"] = {"sent": 1000, "lost": 12, "clean": False}
    open_page(browser, write(tmp_path, "report.html", render_html(results, SAMPLES)))
    assert browser.find_element("css selector", "header#verdict").get_attribute("class") == f"verdict {cls}"
    assert browser.find_element("css selector", "header#verdict .outcome").text == word
    assert [li.text for li in css(browser, "header#verdict ul.reasons li")] == [reason]
    assert header_colour(browser, screenshot(browser, tmp_path / "shot.png")) == colour
    # Sections without content are left out: no known answers, no partition here.
    assert not css(browser, "#known-answers") and not css(browser, "#pairs")


def test_report_prints_without_clipping(browser: Any, tmp_path: Path) -> None:
    open_page(browser, write(tmp_path, "report.html", render_html(*full_results(probes=3))))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        wraps = css(browser, ".table-wrap")
        assert wraps and {w.value_of_css_property("overflow-x") for w in wraps} == {"visible"}
        breaks = [s.value_of_css_property("break-before") for s in css(browser, "section")]
        assert breaks.count("page") >= 5  # a page per long section; the short ones follow on
        # Nothing wider than the page: every table fits its wrapper.
        assert browser.execute_script(
            "return [...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth + 1)"
        )
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    pdf = base64.b64decode(browser.print_page())
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 5


# --------------------------------------------------------------------------- compare.html and trials.html


def test_compare_page(browser: Any, tmp_path: Path) -> None:
    worse = compare(sample_results(outage_s=0.002), sample_results(outage_s=0.050))
    open_page(browser, write(tmp_path, "compare.html", render_compare_html(worse, "runs/a", "runs/b")))
    assert browser.find_element("css selector", "header#verdict").get_attribute("class") == "verdict fail"
    assert browser.find_element("css selector", "header#verdict .outcome").text == "REGRESSED"
    reasons = [li.text for li in css(browser, "header#verdict ul.reasons li")]
    assert reasons[0] == "voice, cut (apply): outage 2.0 ms in A, 50.0 ms in B (tolerance ± 3.0 ms)."
    figures = rows(browser, "table.differences")
    assert figures[0][:8] == ["REGRESSED", "voice", "cut (apply)", "outage", "2.0 ms", "50.0 ms", "+48.0 ms", "± 3.0 ms"]
    assert len(css(browser, "table.differences td.range svg")) == len(figures)
    assert [r[0] for r in rows(browser, "table.shares")] == ["same"] * 4  # availability and three phases' loss
    no_markdown(body_text(browser))
    assert header_colour(browser, screenshot(browser, tmp_path / "compare.png")) == FAIL_BG
    same = compare(sample_results(), sample_results())
    open_page(browser, write(tmp_path, "same.html", render_compare_html(same, "a", "b")))
    assert browser.find_element("css selector", "header#verdict .outcome").text == "NO REGRESSION"
    other = copy.deepcopy(sample_results())
    other["metrics"][0]["event"], other["phases"], other["availability"] = "other", {}, {}
    open_page(browser, write(tmp_path, "none.html", render_compare_html(compare(sample_results(), other), "a", "b")))
    assert browser.find_element("css selector", "header#verdict").get_attribute("class") == "verdict inconclusive"
    assert browser.find_element("css selector", "header#verdict .outcome").text == "NOTHING TO COMPARE"
    assert [li.text for li in css(browser, "#only li")] == ["only in A: voice / cut (apply)", "only in B: voice / other (apply)"]


def trials_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """trials.json's summary of `runs`, as `drill run --trials` builds it."""
    from dataclasses import asdict

    outcomes = [str(r["outcome"]) for r in runs]
    return {
        "trials": len(runs), "outcomes": outcomes, "outcome": overall_outcome(outcomes),
        "spreads": [asdict(s) for s in aggregate(runs)], "pair_spreads": pair_spreads_json(aggregate_pairs(runs)),
        "validation": validation_json(validation(runs)),
    }  # fmt: skip


def test_trials_page(browser: Any, tmp_path: Path) -> None:
    runs = [full_results(probes=2)[0] for _ in range(3)]
    runs[1]["metrics"][0]["outage_s"] = 0.004
    runs[2]["metrics"][0]["time_to_recover_s"] = None
    summary = json.loads(json.dumps(trials_summary(runs)))  # as read back from trials.json
    open_page(browser, write(tmp_path, "trials.html", render_trials_html(summary, "cut")))
    assert browser.find_element("css selector", "header#verdict .outcome").text == "FAILED"
    assert browser.find_element("css selector", "header#verdict .facts").text == "3 trials: failed, failed, failed"
    assert [li.text for li in css(browser, "header#verdict ul.reasons li")][3:] == [
        "Known answer FAIL: cut-short (cut (apply)): 0 of 3 trials passed.",
        "Partition pair split: b → a not as intended (cut) in 3 of 3 trials.",
        "Partition pair split: a → c could not be judged in 3 of 3 trials.",
    ]
    validation_rows = rows(browser, "table.validation")
    assert [(r[0], r[-2], r[-1]) for r in validation_rows] == [("cut-held", "3 of 3", "PASS"), ("cut-short", "0 of 3", "FAIL")]
    assert [r.get_attribute("class") for r in css(browser, "table.validation tbody tr")] == ["pass", "fail"]
    spreads = rows(browser, "table.spreads")
    assert len(spreads) == 6  # two probes × three figures
    assert spreads[0][:6] == ["probe-00", "cut (apply)", "outage", "2.0 ms", "2.0 ms", "4.0 ms"]
    assert spreads[2][:6] + spreads[2][7:] == ["probe-00", "cut (apply)", "time_to_recover", "2000.0 ms", "2000.0 ms", "2000.0 ms", "1", "± 1.5 ms"]
    assert len(css(browser, "table.spreads td.range svg")) == 6
    pairs = rows(browser, "table.pair-spreads")
    assert [(r[0], r[2], r[4]) for r in pairs][:2] == [("PASS", "a → b", "cut, cut, cut"), ("FAIL", "b → a", "open, open, open")]
    no_markdown(body_text(browser))
    assert header_colour(browser, screenshot(browser, tmp_path / "trials.png")) == FAIL_BG


def test_cli_compare_writes_the_page(tmp_path: Path) -> None:
    for name, results in (("a", sample_results(outage_s=0.002)), ("b", sample_results(outage_s=0.050))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    page = tmp_path / "compare.html"
    cmd = [sys.executable, "-m", "drills", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--html", str(page)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr  # B regressed
    assert '<p class="outcome">REGRESSED</p>' in page.read_text()
    # Two runs with no figure in common: exit 2 with the reason, and the page says so too.
    other = sample_results()
    other["metrics"][0]["event"], other["phases"], other["availability"] = "other", {}, {}
    (tmp_path / "b" / "results.json").write_text(json.dumps(other))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "no figure in common" in proc.stderr and "Traceback" not in proc.stderr
    assert '<p class="outcome">NOTHING TO COMPARE</p>' in page.read_text()


def test_write_all_writes_the_page(tmp_path: Path) -> None:
    written = write_all(*full_results(), tmp_path)
    assert (tmp_path / "report.html") in written
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and the browser tests cannot run: no chromium"):
        unavailable("no chromium")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        unavailable("no chromium")
